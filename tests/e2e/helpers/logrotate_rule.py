"""The project's own logrotate rule (config/logrotate), as shipped, for an agent under test.

    conf = logrotate_rule.for_agent(agent_pid, audit_path, tmp_path)
    subprocess.run([logrotate, "--force", "-s", state, conf])

Only its paths change: the audit file becomes `audit_path`, the file it creates is root's, and `systemctl kill`
in `postrotate` becomes a SIGHUP to `agent_pid`. Each replaced text must occur once, so that a change to the rule
shows here rather than silently testing something else.
"""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def for_agent(agent_pid, audit_path, directory):
    """Writes the rule for the agent into `directory`; returns the path of the rule file."""
    systemctl = os.path.join(directory, "systemctl")
    with open(systemctl, "w") as f:
        f.write(f"#!/bin/sh\nkill -HUP {agent_pid}\n")
    os.chmod(systemctl, 0o755)
    with open(os.path.join(REPO, "config", "logrotate")) as f:
        text = f.read()
    for old, new in {
        "/var/log/emrfs-role-agent/audit.log": str(audit_path),
        "create 0600 emrfs-role-agent emrfs-role-agent": "create 0600 root root",
        "/bin/systemctl": systemctl,
    }.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    conf = os.path.join(directory, "logrotate.conf")
    with open(conf, "w") as f:
        f.write(text)
    return conf
