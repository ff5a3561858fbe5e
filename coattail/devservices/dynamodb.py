"""DynamoDB Local (from Maven Central) on loopback, one shared database for every region and key.

DynamoDB Local has no option to choose the interface (its flags: -port, -dbPath, -inMemory,
-sharedDb, -cors, -delayTransientStatuses, -optimizeDbBeforeStartup, -disableTelemetry) and its
Jetty server listens on all of them. It is therefore started through ``LoopbackDynamoDB.java``, a
single-file Java program that binds the same server to one host before starting it. With a
``-dbPath`` (the default here) its tables and items survive restarts; ``-inMemory`` is for tests.
"""

from __future__ import annotations

from pathlib import Path

from coattail.devservices import jars

LAUNCHER = Path(__file__).with_name("LoopbackDynamoDB.java")
HOST = "127.0.0.1"


def server_argv(home: Path, port: int, in_memory: bool = False, host: str = HOST) -> list[str]:
    lib = jars.jar_dir("dynamodb")
    storage = ["-inMemory"] if in_memory else ["-dbPath", str(home / "data")]
    (home / "data").mkdir(parents=True, exist_ok=True)
    return [
        jars.java(),
        "-Xmx512m",
        f"-Djava.library.path={lib}",  # the sqlite4java native library was copied beside the jars
        "-cp",
        str(lib / "*"),
        str(LAUNCHER),  # compiled in memory by the java launcher (JDK 11+ source-file mode)
        host,
        "-port",
        str(port),
        "-sharedDb",  # otherwise tables are separate per access key and region
        "-disableTelemetry",  # no calls home from a local tool
        *storage,
    ]


def answers(endpoint: str, timeout: float = 2.0) -> bool:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local accepts any key
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 0}),
    )
    try:
        client.list_tables(Limit=1)
    except Exception:
        return False
    return True
