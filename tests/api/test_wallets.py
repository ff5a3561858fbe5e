"""The wallet store (DynamoDB Local and in memory, same semantics) and GET /wallets/* under uvicorn."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from coattail.chains.labels import LabelError, normalize_address
from coattail.contracts import Alert
from coattail.hotstore import DynamoAlertStore, MemoryAlertStore
from coattail.hotstore.wallets import (
    ADDRESS_PATTERNS,
    DynamoWalletStore,
    MemoryWalletStore,
    WalletStoreError,
    alpha_key,
    wallet_refs,
)
from tests.api.helpers import LiveServer, api_settings, serve

pytestmark = pytest.mark.services
SOL = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"  # 44 base58 characters


def eth(n: int) -> str:
    return f"0x{n:040x}"


def score(
    wallet: str, alpha: float, *, at: datetime, chain: str = "ethereum", trades: int = 7, pct: float = 50.0
) -> dict[str, Any]:
    """A ``wallet_scores`` row as MOD-004 writes it."""
    return {
        "blockchain": chain,
        "wallet": wallet,
        "scored_at": at,
        "trade_count": trades,
        "win_rate": 0.6,
        "avg_return": 0.02,
        "max_drawdown": 0.05,
        "alpha": alpha,
        "alpha_percentile": pct,
    }


def onchain_alert(
    n: int, details: dict[str, Any], *, age: timedelta, ttl: timedelta = timedelta(hours=24)
) -> Alert:
    return Alert.create(
        module_id="MOD-005",
        alert_type="known_whale_activity",
        symbol="ETH-USD",
        exchange="uniswap_v2",
        severity="medium",
        detected_at=datetime.now(UTC) - age,
        message=f"whale move #{n}",
        details={"blockchain": "ethereum", **details},
        evidence=("ethereum", f"0xtx{n}", n),
        ttl=ttl,
    )


@pytest.fixture(params=["dynamodb", "memory"])
def wallets(request: pytest.FixtureRequest) -> Iterator[DynamoWalletStore | MemoryWalletStore]:
    if request.param == "memory":
        yield MemoryWalletStore()
    else:
        yield DynamoWalletStore(request.getfixturevalue("store"))


def leaderboard(
    store: DynamoWalletStore | MemoryWalletStore, chain: str, limit: int
) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        rows, cursor = store.top(chain, limit, cursor)
        pages.append(rows)
        if cursor is None:
            return pages


# -- the store ----------------------------------------------------------------------------------------
def test_alpha_keys_sort_like_the_numbers() -> None:
    values = [-1e300, -3.5, -1.0, -1e-300, -0.0, 0.0, 1e-300, 0.25, 1.0, 7.0, 1e300]
    keys = [alpha_key(v) for v in values]
    assert keys == sorted(keys)
    assert alpha_key(-0.0) == alpha_key(0.0)
    assert all(len(k) == 16 for k in keys)


def test_documented_address_patterns_are_what_the_store_accepts() -> None:
    samples = [eth(1), eth(1).upper().replace("0X", "0x"), "0x123", SOL, SOL[:31], "0" + SOL[1:], SOL + "1"]
    for chain, pattern in ADDRESS_PATTERNS.items():
        for sample in samples:
            try:
                normalize_address(chain, sample)
                accepted = True
            except LabelError:
                accepted = False
            assert accepted == bool(re.fullmatch(pattern, sample)), (chain, sample)


def test_top_pages_by_alpha_without_overlap_or_gap(wallets: DynamoWalletStore | MemoryWalletStore) -> None:
    now = datetime.now(UTC)
    alphas = [(-1) ** n * n * 0.37 for n in range(23)] + [1.11, 1.11]  # negatives, zero and a tie
    rows = [score(eth(n), a, at=now, pct=n * 4.0) for n, a in enumerate(alphas)]
    rows.append(score(SOL, 99.0, at=now, chain="solana"))  # another chain's board
    assert wallets.put_scores(rows) == 26
    pages = leaderboard(wallets, "ethereum", 10)
    assert [len(p) for p in pages] == [10, 10, 5]
    flat = [row for page in pages for row in page]
    assert [r["rank"] for r in flat] == list(range(1, 26))
    assert sorted(r["address"] for r in flat) == sorted(eth(n) for n in range(25))  # each once
    assert [r["alpha"] for r in flat] == sorted(alphas, reverse=True)
    assert (flat[0]["trade_count"], flat[0]["label"]) == (7, None)
    # An exactly-full last page says so: no cursor to an empty page.
    assert [len(p) for p in leaderboard(wallets, "ethereum", 5)] == [5] * 5
    assert [r["address"] for r in wallets.top("solana", 10, None)[0]] == [SOL]
    with pytest.raises(WalletStoreError):
        wallets.top("ethereum", 10, "3|not-a-key")


def test_a_new_score_replaces_the_wallets_place(wallets: DynamoWalletStore | MemoryWalletStore) -> None:
    now = datetime.now(UTC)
    wallets.put_scores([score(eth(1), 5.0, at=now - timedelta(hours=2)), score(eth(2), 3.0, at=now)])
    wallets.put_scores([score(eth(1), 1.0, at=now - timedelta(hours=1))])  # eth(1) falls below eth(2)
    top, _ = wallets.top("ethereum", 10, None)
    assert [(r["address"], r["alpha"]) for r in top] == [(eth(2), 3.0), (eth(1), 1.0)]
    # A replayed older score joins the history but does not take the place back; replays change nothing.
    for _ in range(2):
        wallets.put_scores([score(eth(1), 5.0, at=now - timedelta(hours=2))])
    assert [(r["address"], r["alpha"]) for r in wallets.top("ethereum", 10, None)[0]] == [
        (eth(2), 3.0),
        (eth(1), 1.0),
    ]
    latest = wallets.latest("ethereum", eth(1))
    assert latest is not None
    assert latest["alpha"] == 1.0
    # History newest first, one entry per scoring; the checksummed spelling finds the same wallet.
    history = wallets.history("ethereum", eth(1).upper().replace("0X", "0x"), 10)
    assert [h["alpha"] for h in history] == [1.0, 5.0]
    assert history[0]["scored_at"] > history[1]["scored_at"]
    assert len(wallets.history("ethereum", eth(1), 1)) == 1


def test_bad_rows_are_one_line_each_and_the_rest_loads(
    wallets: DynamoWalletStore | MemoryWalletStore, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    bad = [
        score("0x123", 1.0, at=now),
        score(eth(3), math.nan, at=now),
        score(SOL, 1.0, at=now, chain="bitcoin"),
        {**score(eth(4), 1.0, at=now), "scored_at": "2026-01-01T00:00:00"},  # no offset
    ]
    with caplog.at_level(logging.WARNING, logger="coattail.hotstore.wallets"):
        assert wallets.put_scores([*bad, score(eth(5), 2.0, at=now)]) == 1
    assert len(caplog.records) == 4
    assert [r["address"] for r in wallets.top("ethereum", 10, None)[0]] == [eth(5)]


def test_scores_expire_after_the_retention(store: DynamoAlertStore) -> None:
    for wallets in (
        DynamoWalletStore(store, retention=timedelta(hours=1)),
        MemoryWalletStore(timedelta(hours=1)),
    ):
        now = datetime.now(UTC)
        then = now - timedelta(hours=2)  # scored and written then: expired an hour ago
        wallets.put_scores([score(eth(6), 1.0, at=then), score(eth(7), 2.0, at=then)], now=then)
        wallets.put_scores([score(eth(8), 0.5, at=now)])
        assert [r["address"] for r in wallets.top("ethereum", 10, None)[0]] == [eth(8)]
        # Expired items between live ones leave no gap in the pages (and do not count as rows).
        wallets.put_scores([score(eth(9), 1.5, at=now), score(eth(10), 3.0, at=now)])
        pages = leaderboard(wallets, "ethereum", 1)
        assert [[r["address"] for r in p] for p in pages] == [[eth(10)], [eth(9)], [eth(8)]]
        assert [p[0]["rank"] for p in pages] == [1, 2, 3]
        assert wallets.latest("ethereum", eth(7)) is None
        assert wallets.history("ethereum", eth(7), 10) == []


def test_labels_and_alert_references(wallets: DynamoWalletStore | MemoryWalletStore) -> None:
    now = datetime.now(UTC)
    label = {
        "blockchain": "ethereum",
        "address": eth(10).upper().replace("0X", "0x"),
        "label": "Example Fund",
        "entity_type": "fund",
        "source": "https://example.org/fund",
        "updated_at": now,
    }
    assert wallets.put_labels([label, {**label, "address": "nope"}]) == 1
    got = wallets.label("ethereum", eth(10))
    assert got is not None
    assert (got["label"], got["entity_type"]) == ("Example Fund", "fund")
    wallets.put_scores([score(eth(10), 4.0, at=now)])
    assert wallets.top("ethereum", 1, None)[0][0]["label"] == got

    first = onchain_alert(1, {"wallet": eth(10), "counterparty": eth(11)}, age=timedelta(minutes=30))
    second = onchain_alert(2, {"from_address": eth(10), "to_address": eth(12)}, age=timedelta(minutes=5))
    gone = onchain_alert(3, {"trader": eth(10)}, age=timedelta(hours=3), ttl=timedelta(hours=1))
    assert wallet_refs(second) == [("ethereum", eth(10)), ("ethereum", eth(12))]
    assert wallet_refs(first) == [("ethereum", eth(10))]  # the counterparty is not the alert's subject
    assert wallets.put_alert_refs([first, second, gone, second]) == 4
    assert wallets.alerts("ethereum", eth(10), 10) == [second.alert_id, first.alert_id]  # newest first
    assert wallets.alerts("ethereum", eth(10), 1) == [second.alert_id]
    assert wallets.alerts("ethereum", eth(12), 10) == [second.alert_id]

    assert wallets.remove_labels([("ethereum", eth(10))]) == 1
    assert wallets.label("ethereum", eth(10)) is None


def test_wallet_items_stay_out_of_alert_listings(store: DynamoAlertStore) -> None:
    from coattail.hotstore import streams_for

    wallets = DynamoWalletStore(store)
    now = datetime.now(UTC)
    alert = onchain_alert(4, {"wallet": eth(20)}, age=timedelta(minutes=1))
    store.write([alert])
    wallets.put_scores([score(eth(20), 1.0, at=now)])
    wallets.put_alert_refs([alert])
    page = store.page(streams_for("known_whale_activity", None, []), now - timedelta(hours=1), 50, now)
    assert [a["alert_id"] for a in page.items] == [alert.alert_id]
    assert store.get(f"wallet#ethereum#{eth(20)}", now) is None


# -- the API under uvicorn ------------------------------------------------------------------------------
def seed_api(store: DynamoAlertStore) -> list[Alert]:
    now = datetime.now(UTC)
    wallets = DynamoWalletStore(store)
    wallets.put_scores(
        [score(eth(n), n * 0.5, at=now - timedelta(hours=1), pct=n * 3.0) for n in range(1, 31)]
    )
    wallets.put_scores([score(eth(30), 20.0, at=now, pct=99.5)])
    wallets.put_labels(
        [{"blockchain": "ethereum", "address": eth(30), "label": "Whale A", "entity_type": "whale",
          "source": "operator file", "updated_at": now}]
    )  # fmt: skip
    alerts = [
        onchain_alert(10, {"wallet": eth(30), "label": "Whale A"}, age=timedelta(minutes=20)),
        onchain_alert(11, {"trader": eth(30)}, age=timedelta(minutes=2)),
    ]
    store.write(alerts)
    wallets.put_alert_refs(alerts)
    return alerts


def test_leaderboard_pages_over_http(live: LiveServer, store: DynamoAlertStore) -> None:
    seed_api(store)
    with live.client() as client:
        first = client.get("/wallets/top", params={"chain": "ethereum", "limit": 20})
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["chain"], len(body["wallets"])) == ("ethereum", 20)
        assert body["next_cursor"]
        top = body["wallets"][0]
        assert (top["rank"], top["address"], top["alpha"], top["alpha_percentile"]) == (
            1,
            eth(30),
            20.0,
            99.5,
        )
        assert (top["label"]["label"], top["win_rate"], top["trade_count"]) == ("Whale A", 0.6, 7)
        second = client.get(
            "/wallets/top", params={"chain": "ethereum", "limit": 20, "cursor": body["next_cursor"]}
        ).json()
        assert second["next_cursor"] is None
        rows = body["wallets"] + second["wallets"]
        assert [r["rank"] for r in rows] == list(range(1, 31))
        assert sorted(r["address"] for r in rows) == sorted(eth(n) for n in range(1, 31))
        assert [r["alpha"] for r in rows] == sorted((r["alpha"] for r in rows), reverse=True)
        assert client.get("/wallets/top", params={"chain": "solana"}).json() == {
            "chain": "solana", "wallets": [], "next_cursor": None
        }  # fmt: skip

        def problem(path: str, **params: Any) -> str:
            answer = client.get(path, params=params)
            assert answer.status_code == 422, (path, params, answer.text)
            return str(answer.json()["detail"])

        assert problem("/wallets/top", chain="bitcoin").startswith("chain:")
        assert problem("/wallets/top").startswith("chain:")
        assert problem("/wallets/top", chain="ethereum", limit=0).startswith("limit:")
        assert problem("/wallets/top", chain="ethereum", limit=101).startswith("limit:")
        assert "another chain" in problem("/wallets/top", chain="solana", cursor=body["next_cursor"])
        # A changed MAC character (its first carries six full bits: a cursor ending "AA" stayed the same).
        data, _, mac = body["next_cursor"].partition(".")
        forged = f"{data}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
        assert "altered" in problem("/wallets/top", chain="ethereum", cursor=forged)
        assert problem("/wallets/top", chain="ethereum", cursor="%%%").startswith("cursor:")


def test_wallet_page_over_http(live: LiveServer, store: DynamoAlertStore) -> None:
    alerts = seed_api(store)
    with live.client() as client:
        answer = client.get(f"/wallets/ethereum/{eth(30).replace('0x', '0x').upper().replace('0X', '0x')}")
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert (page["chain"], page["address"]) == ("ethereum", eth(30))
        assert page["label"]["entity_type"] == "whale"
        assert page["latest"]["alpha"] == 20.0
        assert [h["alpha"] for h in page["history"]] == [20.0, 15.0]  # newest first
        assert [a["alert_id"] for a in page["alerts"]] == [alerts[1].alert_id, alerts[0].alert_id]
        assert page["alerts"][1]["details"]["label"] == "Whale A"  # the alert store's JSON form
        assert (
            client.get(f"/wallets/ethereum/{eth(30)}", params={"history": 1}).json()["history"][0]["alpha"]
            == 20.0
        )

        missing = client.get(f"/wallets/ethereum/{eth(99)}")
        assert missing.status_code == 404
        assert eth(99) in missing.json()["detail"]
        assert client.get(f"/wallets/solana/{SOL}").status_code == 404
        for path in ["/wallets/ethereum/0x123", f"/wallets/solana/{eth(1)}", f"/wallets/bitcoin/{eth(1)}",
                     f"/wallets/ethereum/{eth(1)}?history=0"]:  # fmt: skip
            bad = client.get(path)
            assert bad.status_code == 422, (path, bad.text)
            assert bad.json()["detail"].split(":")[0] in {"address", "chain", "history"}


def test_wallet_endpoints_are_protected(
    dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("key-one\n")
    settings = api_settings(dynamodb_endpoint, store.table, **{"api.api_keys_file": str(keys)})
    with serve(create_app(settings, store=store)) as server, server.client() as client:
        assert client.get("/wallets/top", params={"chain": "ethereum"}).status_code == 401
        assert client.get(f"/wallets/ethereum/{eth(1)}").status_code == 401
        ok = client.get("/wallets/top", params={"chain": "ethereum"}, headers={"X-API-Key": "key-one"})
        assert ok.status_code == 200


def test_memory_backed_app_serves_the_same_shapes() -> None:
    from fastapi.testclient import TestClient

    from coattail.settings import load_settings

    wallets = MemoryWalletStore()
    wallets.put_scores([score(eth(1), 1.0, at=datetime.now(UTC))])
    settings = load_settings(env={}, overrides={"hot_store.endpoint_url": "http://127.0.0.1:9"})
    app = create_app(settings, store=MemoryAlertStore(), wallet_store=wallets)
    with TestClient(app) as client:
        rows = client.get("/wallets/top", params={"chain": "ethereum"}).json()["wallets"]
        assert [r["address"] for r in rows] == [eth(1)]
