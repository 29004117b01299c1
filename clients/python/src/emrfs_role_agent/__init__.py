"""The Python client of emrfs-role-agent: S3 credentials decided per request, for the exact key accessed.

Layout (each module opens with what it promises):

- ``botocore``  the botocore client plugin: turning it on, the two hooks, how a request gets its own credentials
- ``resolver``  one request's credentials: its locations through the cache, one session for all of them
- ``targets``   PURE: which locations an S3 operation reaches, and whether it reads or writes
- ``cache``     answers kept by scope and access: longest scope, one fetch in flight, refresh, deny cache
- ``agent``     one request to the agent (SPEC §5) and its answer; secrets never printed
- ``settings``  endpoint, token file and cache times from the environment or client.properties
"""

__version__ = "0.1.0"
