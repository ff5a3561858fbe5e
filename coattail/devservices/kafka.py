"""Single-node Kafka 4 broker in KRaft mode on loopback (broker and controller in one JVM)."""

from __future__ import annotations

import uuid
from pathlib import Path

from coattail.devservices import jars
from coattail.devservices.process import free_port

HEAP = "-Xmx768m"


def write_config(home: Path, port: int | None = None, controller_port: int | None = None) -> dict[str, int]:
    """server.properties for a one-node cluster; returns the ports it uses."""
    port = port or free_port()
    controller_port = controller_port or free_port()
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "3",
        "auto.create.topics.enable": "true",
        # One broker: every internal topic has replication factor 1.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    (home / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (home / "log4j2.properties").write_text(
        "rootLogger.level = WARN\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
        "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
        "appender.stdout.layout.type = PatternLayout\n"
        "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
    )
    return {"port": port, "controller_port": controller_port}


def _java_base(home: Path) -> list[str]:
    classpath = str(jars.jar_dir("kafka") / "*")
    return [
        jars.java(),
        HEAP,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp",
        classpath,
    ]


def format_argv(home: Path) -> list[str]:
    """Format the KRaft storage once (a fresh cluster id)."""
    cluster_id = uuid.uuid4().bytes
    import base64

    cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
    return [
        *_java_base(home),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cid,
        "-c",
        str(home / "server.properties"),
        "--ignore-formatted",
    ]


def server_argv(home: Path) -> list[str]:
    return [*_java_base(home), "kafka.Kafka", str(home / "server.properties")]


def answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the broker serves metadata."""
    from confluent_kafka.admin import AdminClient

    try:
        # log_level 0: while the broker starts, librdkafka would print every refused connection.
        admin = AdminClient(
            {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0}
        )
        meta = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(meta.brokers)
