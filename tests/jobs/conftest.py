"""The pipeline package's Spark fixtures (one local session, a private state folder) for these tests."""

from tests.pipeline.conftest import make_settings, pipeline_state, spark

__all__ = ["make_settings", "pipeline_state", "spark"]
