"""DynamoDB Local (from Maven Central) on loopback, one shared database for every region and key."""

from __future__ import annotations

from pathlib import Path

from coattail.devservices import jars

MAIN_CLASS = "com.amazonaws.services.dynamodbv2.local.main.ServerRunner"


def server_argv(home: Path, port: int, in_memory: bool = False) -> list[str]:
    lib = jars.jar_dir("dynamodb")
    storage = ["-inMemory"] if in_memory else ["-dbPath", str(home / "data")]
    (home / "data").mkdir(parents=True, exist_ok=True)
    return [
        jars.java(),
        "-Xmx512m",
        f"-Djava.library.path={lib}",  # the sqlite4java native library was copied beside the jars
        "-cp",
        str(lib / "*"),
        MAIN_CLASS,
        "-port",
        str(port),
        "-sharedDb",  # otherwise tables are separate per access key and region
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
