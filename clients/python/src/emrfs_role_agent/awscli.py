"""An AWS CLI v1 plugin: every S3 request of every ``aws`` command asks emrfs-role-agent for its key.

Why it is needed beside ``BOTOCORE_EXPERIMENTAL__PLUGINS``: the AWS CLI v1 (``awscli/clidriver.py``, 1.46)
creates the clients of its API commands (``aws s3api ...``, ``aws sts ...``) with botocore's
``create_nested_client``, which turns client plugins off for them; only ``aws s3`` (cp, ls, sync, ...) creates
its clients with plugins on. The CLI's own plugins are loaded at start-up from the ``[plugins]`` section of the
AWS config file, and get the session's event emitter, which every client the CLI creates copies:

    aws configure set plugins.emrfs_role_agent emrfs_role_agent.awscli

(``[plugins]`` / ``emrfs_role_agent = emrfs_role_agent.awscli`` in ``~/.aws/config`` or the file
``AWS_CONFIG_FILE`` names). Clients of other services never emit the S3 events the hooks listen to. With both
this and the environment variable set, each request is still handled once (``register_events``).
"""

from .botocore import register_events


def awscli_initialize(event_hooks):
    """The AWS CLI's plugin entry point: ``event_hooks`` is its session's event emitter."""
    register_events(event_hooks)
