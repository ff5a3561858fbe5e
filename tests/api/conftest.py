"""Fixtures for the alert service: a fresh table in the suite's DynamoDB Local and a live uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from tests.api.helpers import LiveServer, api_settings, local_store, serve


@pytest.fixture
def store(dynamodb_endpoint: str, unique_name: str) -> Iterator[DynamoAlertStore]:
    """A DynamoAlertStore on a fresh, empty alerts table."""
    the_store = local_store(dynamodb_endpoint, unique_name)
    the_store.ensure_table()
    yield the_store
    the_store.client.delete_table(TableName=unique_name)
    the_store.close()


@pytest.fixture
def live(dynamodb_endpoint: str, store: DynamoAlertStore) -> Iterator[LiveServer]:
    """The API under uvicorn on a free port, reading ``store``'s table."""
    app = create_app(api_settings(dynamodb_endpoint, store.table), store=store)
    with serve(app) as server:
        yield server
