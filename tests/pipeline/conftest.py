"""Fixtures of the pipeline tests: ONE Spark session (local[2]) for the whole package, a private
state folder (Iceberg catalog + warehouse), and settings pointing at unique topics/tables/namespaces.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coattail.settings import Settings, load_settings


@pytest.fixture(scope="session")
def pipeline_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline-state")
    os.environ["COATTAIL_STATE_DIR"] = str(path)  # catalog.db + warehouse + checkpoints live here
    return path


@pytest.fixture(scope="session")
def spark(pipeline_state: Path) -> Iterator[Any]:
    from jobs.session import build_session

    session = build_session(
        load_settings(), app_name="coattail-tests", master="local[2]", shuffle_partitions=2
    )
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def make_settings(pipeline_state: Path, unique_name: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a unique lake namespace and checkpoint folder, plus ``overrides``."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "lake.namespace": unique_name,
            "pipeline.checkpoint_location": str(tmp_path / "checkpoints"),
            "pipeline.trigger_interval_seconds": 1,
            "pipeline.shuffle_partitions": 2,
            "pipeline.metrics_port": 0,
        }
        return load_settings(overrides={**base, **{k.replace("__", "."): v for k, v in overrides.items()}})

    return make


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
) -> Settings:
    """Streaming settings on a fresh topic of the suite's broker and a fresh DynamoDB table."""
    from tests.pipeline.streamkit import create_topic, stream_settings

    create_topic(kafka_bootstrap, unique_name)
    return stream_settings(make_settings, kafka_bootstrap, dynamodb_endpoint, unique_name)
