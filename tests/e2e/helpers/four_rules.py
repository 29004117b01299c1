"""The four-rule world: one agent whose rules, behind an STS proxy, give every kind of answer.

    rule 0  no-secrets  deny   s3://secret-bucket/
    rule 1  analytics   allow  the analytics role, for its bucket         (STS once, then the cache)
    rule 2  untrusted   allow  a role the agent's user may not assume (STS: AccessDenied)
    rule 3  sts-down    allow  the engineering role, for its bucket; the proxy answers 503 for it
    no match: fallback deny

The agent talks to STS through the proxy (`world.proxy`, which counts AssumeRole calls per role) with
max_calls_per_second 1000 and call_timeout 5s, as `agent_user` (uid, gid) when given (the conftest
fixture runs it as nobody when the tests run as root, so that callers and agent differ): a request for the sts-down role is answered once the
agent has retried for that long, and a real AssumeRole on a busy machine needs more than a few hundred
milliseconds now and then. It logs at debug level, so that a search of what it wrote for secrets covers
everything it can log.

KINDS names each kind of request this world answers and the answer it must get; `request(kind, i)`
gives its query parameters and headers ("{i}" in a parameter becomes `i`, for distinct locations).
"""

NO_RULE_BUCKET = "nobody-bucket"
SECRET_BUCKET = "secret-bucket"


class FourRuleWorld:
    def __init__(self, moto, agent_factory, sts_proxy_factory, agent_user=None):
        self.analytics = moto.role("analytics")
        self.engineering = moto.role("engineering")
        self.untrusted = moto.role("untrusted")
        self.proxy = sts_proxy_factory(unavailable={self.engineering["arn"]})
        self.agent = agent_factory(
            mappings=[
                {"name": "no-secrets", "effect": "deny", "prefixes": [f"s3://{SECRET_BUCKET}/"]},
                {"name": "analytics", "role": self.analytics["arn"], "prefixes": [f"s3://{self.analytics['bucket']}/"]},
                {"name": "untrusted", "role": self.untrusted["arn"], "prefixes": [f"s3://{self.untrusted['bucket']}/"]},
                {"name": "sts-down", "role": self.engineering["arn"],
                 "prefixes": [f"s3://{self.engineering['bucket']}/"]},
            ],
            config={
                "sts": {"endpoint_url": self.proxy.endpoint, "call_timeout": "5s", "max_calls_per_second": 1000},
                "fallback": {"mode": "deny"},
            },
            env={"RUST_LOG": "debug"},
            user=agent_user,
        )
        # kind -> (query parameters, headers besides the token, status, error code or None)
        self.kinds = {
            "allow": ({"location": f"s3://{self.analytics['bucket']}/part-{{i}}"}, {}, 200, None),
            "deny-rule": ({"location": f"s3://{SECRET_BUCKET}/k"}, {}, 403, "AccessDenied"),
            "no-rule": ({"location": f"s3://{NO_RULE_BUCKET}/k"}, {}, 403, "AccessDenied"),
            "sts-denied": ({"location": f"s3://{self.untrusted['bucket']}/k"}, {}, 403, "AccessDenied"),
            "bad-token": ({}, {"Authorization": "wrong"}, 401, "Unauthorized"),
            "bad-param": ({"bogus": "1"}, {}, 400, "InvalidRequest"),
            "bad-location": ({"location": "http://not-s3/k"}, {}, 400, "InvalidRequest"),
            "impersonation": ({"user": "someone-else"}, {}, 403, "ImpersonationDenied"),
            "sts-down": ({"location": f"s3://{self.engineering['bucket']}/k"}, {}, 503, "CredentialsUnavailable"),
        }

    def request(self, kind, i=0):
        """(query parameters, headers) of a request of this kind; the headers carry the agent's token
        unless the kind replaces it."""
        params, headers, _, _ = self.kinds[kind]
        return ({k: v.format(i=i) for k, v in params.items()}, {"Authorization": self.agent.token, **headers})

    def expected(self, kind):
        """(status, error code or None) that a request of this kind must get."""
        _, _, status, code = self.kinds[kind]
        return status, code
