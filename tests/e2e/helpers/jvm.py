"""The JVM side of the end-to-end tests: the clients jar, the test drivers and the runtimes they run on.

    build = jvm.build()                      # scripts/build-emrfs-provider.sh; returns the build directory
    cp = jvm.classpath(build, "hadoop-3.4.1", conf_dir)
    jvm.write_site(conf_dir, jvm.s3a_site(s3_endpoint, agent, jvm.SDK_V2_SETTINGS))   # core-site.xml
    out = jvm.run(cp, "io.emrfsroleagent.e2e.S3aSession", [...], env_extra={...})
    python = jvm.spark_python(); cp = jvm.spark_classpath(build)   # a pyspark job's interpreter and jars
    python = jvm.pyspark_python()            # pyspark alone (Spark SQL over local files: no jars, no Maven)
    cp = jvm.global_classpath(build, "jvm-global")  # with emrfs-role-agent-hooks.jar: every S3 client per request

Runtimes are the modules of tests/java/runtimes/pom.xml (real Hadoop and AWS SDK artefacts).
"""

import os
import shutil
import subprocess
from xml.sax.saxutils import escape

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Per-request wiring, by SDK (docs/emrfs.md has the same table).
SDK_V1_SETTINGS = {
    "fs.s3a.aws.credentials.provider": "io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider",
    "fs.s3a.audit.enabled": "true",
    "fs.s3a.audit.request.handlers": "io.emrfsroleagent.emrfs.RoleAgentRequestHandler",
}
SDK_V2_SETTINGS = {
    "fs.s3a.aws.credentials.provider": "io.emrfsroleagent.sdk2.RoleAgentAwsCredentialsProvider",
    "fs.s3a.audit.enabled": "true",
    "fs.s3a.audit.execution.interceptors": "io.emrfsroleagent.sdk2.RoleAgentExecutionInterceptor",
}
RUNTIME_SETTINGS = {
    "hadoop-3.3.6": SDK_V1_SETTINGS,
    "hadoop-3.4.1": SDK_V2_SETTINGS,
    "hadoop-3.4.1-sdk-current": SDK_V2_SETTINGS,
}


def build():
    """Builds the jar and the drivers (fast when nothing changed); returns the build directory."""
    for tool in ("java", "javac", "mvn"):
        assert shutil.which(tool), f"{tool} not found: scripts/setup-test-env.sh installs a JDK and Maven"
    out = subprocess.run([os.path.join(REPO, "scripts", "build-emrfs-provider.sh")],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"build-emrfs-provider.sh failed:\n{out.stderr[-4000:]}"
    return out.stdout.strip().splitlines()[-1]


def runtime_jars(build_dir, runtime):
    with open(os.path.join(build_dir, "runtimes", f"{runtime}.txt")) as f:
        return f.read().strip().split(":")


def classpath(build_dir, runtime, *first):
    """Directories in `first` (site files), the drivers, the clients jar, then the runtime's jars."""
    return ":".join([*first, os.path.join(build_dir, "test-classes"),
                     os.path.join(build_dir, "emrfs-role-agent-provider.jar"), *runtime_jars(build_dir, runtime)])


def write_site(directory, conf, name="core-site.xml"):
    os.makedirs(directory, exist_ok=True)
    props = "".join(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
                    for k, v in conf.items())
    with open(os.path.join(directory, name), "w") as f:
        f.write(f'<?xml version="1.0"?>\n<configuration>\n{props}</configuration>\n')


def s3a_site(s3_endpoint, agent, wiring, extra=None):
    """S3A against a local S3 (path style, plain HTTP, one attempt), asking `agent`, wired by `wiring`
    (SDK_V1_SETTINGS, SDK_V2_SETTINGS, or only the bucket-level provider), plus `extra`."""
    return {
        "fs.s3a.endpoint": s3_endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        # Fail fast instead of S3A's long default retry schedule when something is wrong.
        "fs.s3a.attempts.maximum": "1",
        "fs.s3a.retry.limit": "1",
        "emrfs-role-agent.endpoint": agent.url,
        "emrfs-role-agent.token-file": agent.token_path,
        **wiring,
        **(extra or {}),
    }


def env(extra=None):
    """No AWS or Hadoop settings from the machine, only what the test gives."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HADOOP_"))}
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    e["AWS_REGION"] = "us-east-1"
    e.update(extra or {})
    return e


def command(cp, main, args):
    return ["java", "-Xss4m", "-XX:+UseSerialGC", "-cp", cp, main, *args]


def run(cp, main, args, env_extra=None, timeout=300):
    return subprocess.run(command(cp, main, args), capture_output=True, text=True, env=env(env_extra),
                          timeout=timeout)


def spark_python():
    """The python of the pyspark virtualenv (scripts/build-emrfs-provider.sh --spark-venv makes it once)."""
    out = subprocess.run([os.path.join(REPO, "scripts", "build-emrfs-provider.sh"), "--spark-venv"],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"pyspark virtualenv: {out.stderr[-4000:]}"
    return out.stdout.strip().splitlines()[-1]


def pyspark_python():
    """The python of the pyspark virtualenv, without building the clients (build-emrfs-provider.sh --spark-venv-only)."""
    out = subprocess.run([os.path.join(REPO, "scripts", "build-emrfs-provider.sh"), "--spark-venv-only"],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"pyspark virtualenv: {out.stderr[-4000:]}"
    return out.stdout.strip().splitlines()[-1]


def spark_classpath(build_dir):
    """What a Spark job adds to pyspark's own Hadoop client: the clients jar, hadoop-aws and its SDK."""
    return ":".join([os.path.join(build_dir, "emrfs-role-agent-provider.jar"), *runtime_jars(build_dir, "spark-3.5")])


def global_classpath(build_dir, runtime, *first):
    """classpath() with emrfs-role-agent-hooks.jar in it too: every S3 client of the JVM asks per request."""
    return ":".join([*first, os.path.join(build_dir, "test-classes"),
                     os.path.join(build_dir, "emrfs-role-agent-hooks.jar"),
                     os.path.join(build_dir, "emrfs-role-agent-provider.jar"), *runtime_jars(build_dir, runtime)])


def client_properties(directory, agent, **extra):
    """Writes client.properties (what the bootstrap writes for the JVM-wide hooks) naming `agent`; its path."""
    path = os.path.join(directory, "client.properties")
    os.makedirs(directory, exist_ok=True)
    settings = {"endpoint": agent.url, "token-file": agent.token_path, **extra}
    with open(path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in settings.items())
    return path
