"""Single-node Kafka 4 broker in KRaft mode on loopback (broker and controller in one JVM).

The storage is formatted once, with a cluster id kept in ``<home>/cluster.id``; later starts reuse
the formatted ``data/`` (topics, offsets) as long as ``data/meta.properties`` exists. Formatting
again with another id would make the broker refuse its own data (``Invalid cluster.id``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

from coattail.devservices import jars
from coattail.devservices.process import free_port, port_open

HEAP = "-Xmx768m"


ClusterIdSource = Callable[[], str]


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A fresh cluster id: base64url of 16 random bytes, never starting with ``-``.

    Like Kafka's own ``Uuid.randomUuid``, an id that would start with ``-`` is drawn again, so even
    a tool that takes the id as a separate argument can never read it as an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(random_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def formatted_cluster_id(home: Path) -> str | None:
    """The cluster id the storage was formatted with, or None when it is not formatted yet."""
    try:
        lines = (home / "data" / "meta.properties").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id" and value.strip():
            return value.strip()
    return None


def cluster_id(home: Path, source: ClusterIdSource = new_cluster_id) -> str:
    """The id of this broker's cluster: the formatted one, else the kept one, else a new one (kept)."""
    found = formatted_cluster_id(home)
    kept = home / "cluster.id"
    if found is None:
        try:
            found = kept.read_text().strip() or None
        except OSError:
            found = None
    if found is None:
        found = source()
    home.mkdir(parents=True, exist_ok=True)
    kept.write_text(found + "\n")
    return found


def _previous_controller_port(home: Path) -> int | None:
    # The controller's address is part of the quorum config; keep it across restarts when it is free.
    try:
        lines = (home / "server.properties").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("controller.quorum.voters="):
            try:
                port = int(line.rsplit(":", 1)[1])
            except (IndexError, ValueError):
                return None
            return None if port_open(port) else port
    return None


def write_config(home: Path, port: int | None = None, controller_port: int | None = None) -> dict[str, int]:
    """server.properties for a one-node cluster; returns the ports it uses."""
    port = port or free_port()
    controller_port = controller_port or _previous_controller_port(home) or free_port()
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


def needs_format(home: Path) -> bool:
    return formatted_cluster_id(home) is None


def format_argv(home: Path, cid: str) -> list[str]:
    """Format the KRaft storage with cluster id ``cid`` (only when :func:`needs_format`)."""
    return [
        *_java_base(home),
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cid}",  # one argv element: an id starting with "-" is not an option
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
