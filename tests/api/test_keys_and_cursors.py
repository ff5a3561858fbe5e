"""API keys fail closed; cursors and Last-Event-ID never cause a 5xx; the cursor key is secret and kept."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from api import cursor_key
from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from coattail.settings import ConfigError
from tests.api.helpers import LiveServer, api_settings, local_store, make_alert, mixed_alerts, seed, serve

pytestmark = pytest.mark.services
COATTAIL = str(Path(sys.executable).parent / "coattail")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: bytes, payload: object) -> str:
    body = orjson.dumps(payload)
    return f"{b64(body)}.{b64(hmac.new(key, body, hashlib.sha256).digest()[:16])}"


# -- API keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "\n  \n", "# a comment only\n"])
def test_a_keys_file_without_keys_stops_the_api(
    dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path, content: str
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(content)
    settings = api_settings(dynamodb_endpoint, store.table, **{"api.api_keys_file": str(keys)})
    with pytest.raises(ConfigError, match="holds no API key"):
        create_app(settings, store=store)


def test_blank_keys_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="blank"):
        api_settings("http://127.0.0.1:1", "some-table", **{"api.api_keys": ["", "   "]})


def test_coattail_api_refuses_an_empty_keys_file_in_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "COATTAIL_STATE_DIR": str(tmp_path / "state"),
        "COATTAIL_API__API_KEYS_FILE": str(keys),
        "DYNAMODB_ENDPOINT": "http://127.0.0.1:9",  # never reached: the keys are checked first
    }
    result = subprocess.run(
        [COATTAIL, "api"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "holds no API key" in result.stderr


def test_eks_without_a_cursor_secret_refuses_to_start(
    dynamodb_endpoint: str, store: DynamoAlertStore
) -> None:
    settings = api_settings(dynamodb_endpoint, store.table, profile="eks")
    with pytest.raises(ConfigError, match="cursor_secret is required"):
        create_app(settings, store=store)


# -- Last-Event-ID ----------------------------------------------------------------------------------
BAD_EVENT_IDS = [
    "9999-12-31T23:59:59-05:00|x",
    "0001-01-01T00:00:00+01:00|x",
    "9999-12-31T23:59:59.999999-23:59|abc",
    "2026-01-01T00:00:00|x",
    "2026-01-01T00:00:00Z|",
    "|x",
    "x|y",
    "2026-13-01T00:00:00Z|x",
    "2026-01-01T00:00:00Z" + "|" + "a" * 65,
    "2026-01-01T00:00:00+99:00|x",
    "\u0661\u0662\u0663|x",
    "x" * 201,
]


def stream_status(server: LiveServer, last_event_id: str) -> int:
    headers = {"Last-Event-ID": last_event_id.encode()}  # raw bytes: non-ASCII too
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", "/alerts/stream", headers=headers) as response,
    ):
        return response.status_code  # leaving the block closes an SSE stream that did start


def test_malformed_last_event_ids_are_4xx(live: LiveServer) -> None:
    rng = random.Random(18)
    fuzzed = []
    alphabet = "0123456789-+:TZ|.x Z\t"
    for _ in range(60):
        base = list(rng.choice(["2026-01-02T03:04:05.678+00:00|abc", "9999-12-31T23:59:59-05:00|x"]))
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.choice(alphabet)
        fuzzed.append("".join(base).strip())
    for value in BAD_EVENT_IDS:
        assert stream_status(live, value) == 422, value
    for value in fuzzed:
        status = stream_status(live, value)
        assert status == 200 or 400 <= status < 500, (value, status)


def test_a_far_future_resume_position_is_accepted(live: LiveServer) -> None:
    assert stream_status(live, "9999-12-31T23:59:59+00:00|x") == 200


# -- cursors ----------------------------------------------------------------------------------------
def first_cursor(client: httpx.Client, **params: object) -> str:
    response = client.get("/alerts", params={"limit": 2, **params})
    assert response.status_code == 200, response.text
    token = response.json()["next"]
    assert token
    return str(token)


def test_cursor_key_is_random_per_table_kept_and_shared_by_replicas(
    dynamodb_endpoint: str, store: DynamoAlertStore, unique_name: str
) -> None:
    seed(store, mixed_alerts(12, datetime.now(UTC)))
    settings = api_settings(dynamodb_endpoint, store.table)
    with serve(create_app(settings, store=store)) as one, one.client() as client:
        token = first_cursor(client)
    # Another replica (and a restart) on the same table: the same key, so the cursor is accepted.
    replica = local_store(dynamodb_endpoint, store.table)
    with serve(create_app(settings, store=replica)) as two, two.client() as client:
        assert client.get("/alerts", params={"limit": 2, "cursor": token}).status_code == 200
    replica.close()
    # The key is not derived from anything public: the old table-name key forges nothing.
    stored = cursor_key.stored_key(store.client, store.table)
    derived = hashlib.sha256(f"coattail-cursor:{store.table}".encode()).digest()
    assert stored != derived
    assert len(stored) == 32
    body = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    forged = sign(derived, orjson.loads(body))
    with serve(create_app(settings, store=store)) as three, three.client() as client:
        response = client.get("/alerts", params={"limit": 2, "cursor": forged})
        assert response.status_code == 422
        assert "altered" in response.json()["detail"]
        # The reserved item never shows up as an alert.
        ids = [a["alert_id"] for a in client.get("/alerts", params={"limit": 200}).json()["items"]]
        assert not any(i.startswith("__coattail__") for i in ids)
        assert len(ids) == 12
    # Another table has another key.
    other = local_store(dynamodb_endpoint, unique_name + "b")
    other.ensure_table()
    try:
        assert cursor_key.stored_key(other.client, other.table) != stored
    finally:
        other.client.delete_table(TableName=other.table)
        other.close()


def test_a_configured_secret_wins(dynamodb_endpoint: str, store: DynamoAlertStore) -> None:
    seed(store, mixed_alerts(8, datetime.now(UTC)))
    default = api_settings(dynamodb_endpoint, store.table)
    secret = api_settings(dynamodb_endpoint, store.table, **{"api.cursor_secret": "s" * 32})
    with serve(create_app(default, store=store)) as server, server.client() as client:
        unsigned_by_secret = first_cursor(client)
    with serve(create_app(secret, store=store)) as server, server.client() as client:
        token = first_cursor(client)
        assert client.get("/alerts", params={"limit": 2, "cursor": token}).status_code == 200
        assert client.get("/alerts", params={"limit": 2, "cursor": unsigned_by_secret}).status_code == 422


def test_every_malformed_cursor_is_4xx(live: LiveServer, store: DynamoAlertStore) -> None:
    seed(store, [make_alert(n) for n in range(6)])
    key = cursor_key.stored_key(store.client, store.table)
    with live.client() as client:
        types = [t["alert_type"] for t in client.get("/alert-types").json()["alert_types"]]
        streams = [f"type:{t}" for t in types]
        token = first_cursor(client)
        query = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["q"]
        good_since = "2026-01-01T00:00:00.000000Z"
        # Correctly signed (as if the key had leaked) but with contents the server must still refuse.
        signed_garbage = [
            {"v": 1, "q": query, "since": "9999-12-31T23:59:59-05:00", "p": dict.fromkeys(streams)},
            {"v": 1, "q": query, "since": "garbage", "p": dict.fromkeys(streams)},
            {"v": 1, "q": query, "since": 5, "p": dict.fromkeys(streams)},
            {"v": 1, "q": query, "since": good_since, "p": {name: ["id", "tomorrow"] for name in streams}},
            {
                "v": 1,
                "q": query,
                "since": good_since,
                "p": {name: ["x" * 300, good_since] for name in streams},
            },
            {"v": 1, "q": query, "since": good_since, "p": {name: [1, 2] for name in streams}},
            {"v": 1, "q": query, "since": good_since, "p": dict.fromkeys(streams, "done!")},
            {"v": 1, "q": query, "since": good_since, "p": {}},
            {"v": 2, "q": query, "since": good_since, "p": dict.fromkeys(streams)},
            [1, 2, 3],
            "text",
        ]
        for payload in signed_garbage:
            response = client.get("/alerts", params={"cursor": sign(key, payload)})
            assert response.status_code == 422, (payload, response.text)
        rng = random.Random(7)
        alphabet = "ABCxyz019-_.=+/ %"
        mutated = {".", "..", token + ".", "." + token, token.replace(".", ""), "a.b", "=.="}
        while len(mutated) < 150:
            chars = list(token)
            for _ in range(rng.randint(1, 3)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            mutated.add("".join(chars))
        for value in mutated:
            if value == token:
                continue
            response = client.get("/alerts", params={"cursor": value, "limit": 2})
            assert 400 <= response.status_code < 500, (value, response.status_code, response.text)
