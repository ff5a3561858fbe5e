"""`coattail simulate-chain`: Uniswap V2 and test tokens on a node, and wallets trading along a price path.

The node is ``--rpc-url``, else ANVIL_RPC_URL, else the anvil `coattail dev up` started. The ETH
price path is the CEX simulator's: ``--eth-prices FILE`` (what ``coattail simulate --out`` wrote, or
TradeEvent JSONL) or, without a file, the simulator's own fair-price walk for ``--seed`` and
``--cex-minutes`` (the same draws ``coattail simulate --seed S --minutes M`` makes for the tier's
instruments), or one constant ``--eth-price``.

``--wallets`` plants informed wallets (trading ahead of the path's moves), noise wallets and labelled
whales moving funds to and from exchange addresses (connectors/chainsim/wallets.py). It runs in event
time (so does ``--block-seconds`` alone): step i's blocks are at ``--block-seconds`` × i into the path,
the run placed so that it ends just before now (hours of block time in a minute or two), and
``--cex-trades-out`` writes the CEX reference trades of those block times.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from coattail.cliutil import fail
from coattail.errors import CoattailError
from coattail.settings.paths import state_dir
from connectors.chainsim.deploy import DEFAULT_POOL_ETH, Deployment

if TYPE_CHECKING:
    import requests
    from web3 import Web3

    from connectors.chainsim.prices import PricePath
    from connectors.chainsim.truth import TruthLog


def simulate_chain_command(
    rpc_url: Annotated[
        str | None, typer.Option(help="JSON-RPC URL of the node (default: ANVIL_RPC_URL or `dev up`'s anvil)")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Steps to run, as fast as the node mines (default 100)")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Run this long in real time, one step per --interval instead")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds of the price path per step")] = 2.0,
    seed: Annotated[
        int, typer.Option(help="Random seed (wallet activity; and the CEX walk without a file)")
    ] = 1,
    truth: Annotated[
        Path | None, typer.Option(help="Write the ground truth (every planted event) here")
    ] = None,
    tokens_out: Annotated[
        Path | None, typer.Option(help="Write a token-registry overlay (config/tokens format) here")
    ] = None,
    deployment_file: Annotated[
        Path | None,
        typer.Option(
            "--deployment", help="Reuse the world recorded here when it is on the chain; else record it"
        ),
    ] = None,
    eth_prices: Annotated[
        Path | None, typer.Option(help="CEX trades to follow: `coattail simulate --out` JSONL or TradeEvents")
    ] = None,
    instrument: Annotated[
        str, typer.Option(help="Instrument of --eth-prices to follow")
    ] = "binance:ETH-USDT",
    eth_price: Annotated[str | None, typer.Option(help="Follow one constant ETH price instead")] = None,
    cex_minutes: Annotated[
        float, typer.Option(help="--minutes of the `coattail simulate` run whose walk to follow")
    ] = 60,
    tier: Annotated[str | None, typer.Option(help="Tier whose CEX instruments the walk is drawn for")] = None,
    pool_eth: Annotated[float, typer.Option(help="WETH in each pool when the world is deployed")] = float(
        DEFAULT_POOL_ETH
    ),
    wallets: Annotated[
        bool, typer.Option("--wallets", help="Plant informed and noise wallets and labelled whales")
    ] = False,
    block_seconds: Annotated[
        int | None, typer.Option(help="Event time: block seconds per step (default 60 with --wallets)")
    ] = None,
    informed: Annotated[int, typer.Option(help="--wallets: informed wallets")] = 3,
    noise: Annotated[int, typer.Option(help="--wallets: noise wallets")] = 80,
    whales: Annotated[int, typer.Option(help="--wallets: labelled whales (whale / fund)")] = 2,
    horizon_minutes: Annotated[
        int, typer.Option(help="--wallets: how far ahead the informed wallets see the path")
    ] = 60,
    informed_move: Annotated[
        float, typer.Option(help="--wallets: percent move over the horizon an informed wallet trades on")
    ] = 0.4,
    labels_out: Annotated[
        Path | None, typer.Option(help="--wallets: write the whales as an operator label CSV here")
    ] = None,
    cex_trades_out: Annotated[
        Path | None, typer.Option(help="Event time: write one binance ETH-USDT TradeEvent per step here")
    ] = None,
    raw_out: Annotated[
        Path | None,
        typer.Option(help="Event time: write the run's blocks and logs (for `coattail normalize --source`)"),
    ] = None,
    ends_ago_minutes: Annotated[
        float,
        typer.Option(
            min=1,
            help="Event time: the run's last step lies this far before now (the demo keeps its wallet "
            "history clear of the CEX history, whose prices would value part of it)",
        ),
    ] = 2,
) -> None:
    """Real Uniswap V2 on a local chain: swaps, large transfers and liquidity changes, with ground truth."""
    if steps is not None and seconds is not None:
        fail("give --steps or --seconds, not both")
    if interval <= 0:
        fail("--interval must be positive")
    if (steps is not None and steps < 0) or (seconds is not None and seconds < 0):
        fail("--steps and --seconds cannot be negative")
    warp = wallets or block_seconds is not None
    if warp and seconds is not None:
        fail("--wallets and --block-seconds run as fast as the node mines: give --steps, not --seconds")
    if block_seconds is not None and block_seconds < 1:
        fail("--block-seconds must be at least 1")
    if labels_out is not None and not wallets:
        fail("--labels-out writes the whales of --wallets: add --wallets")
    if (cex_trades_out is not None or raw_out is not None) and not warp:
        fail("--cex-trades-out and --raw-out need --block-seconds or --wallets (an event-time run)")
    if horizon_minutes < 1 or informed_move <= 0:
        fail("--horizon-minutes and --informed-move must be positive")
    realtime = seconds is not None
    default_steps = 360 if wallets else 100
    count = int(seconds / interval) if seconds is not None else (default_steps if steps is None else steps)
    scenario = None
    if warp:
        scenario = EventTimeRun(
            block_seconds=block_seconds or 60,
            wallets=wallets,
            informed=informed,
            noise=noise,
            whales=whales,
            horizon_seconds=horizon_minutes * 60,
            threshold=Decimal(str(informed_move)) / 100,
            labels_out=labels_out,
            cex_trades_out=cex_trades_out,
            raw_out=raw_out,
            ends_ago_seconds=round(ends_ago_minutes * 60),
        )
    url = rpc_url or os.environ.get("ANVIL_RPC_URL") or _recorded_anvil()
    if not url:
        fail("no node: pass --rpc-url, set ANVIL_RPC_URL or start anvil with `coattail dev up --chain`")
    try:
        _run(
            url=url,
            count=count,
            interval=interval,
            realtime=realtime,
            seed=seed,
            truth_path=truth,
            tokens_out=tokens_out,
            deployment_file=deployment_file,
            eth_prices=eth_prices,
            instrument=instrument,
            eth_price=eth_price,
            cex_minutes=cex_minutes,
            tier=tier,
            pool_eth=pool_eth,
            event_time=scenario,
        )
    except CoattailError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)


def _run(
    *,
    url: str,
    count: int,
    interval: float,
    realtime: bool,
    seed: int,
    truth_path: Path | None,
    tokens_out: Path | None,
    deployment_file: Path | None,
    eth_prices: Path | None,
    instrument: str,
    eth_price: str | None,
    cex_minutes: float,
    tier: str | None,
    pool_eth: float,
    event_time: EventTimeRun | None = None,
) -> None:
    from web3 import HTTPProvider, Web3

    from connectors.chainsim.deploy import ChainSimError, deploy, is_live, load_deployment
    from connectors.chainsim.drive import ChainDriver
    from connectors.chainsim.truth import TruthLog

    start = None
    if event_time is not None:  # the run ends just before now: its blocks are in the recent past
        span = count * event_time.block_seconds
        start = int(time.time()) - span - event_time.ends_ago_seconds
        cex_minutes = max(cex_minutes, span / 60 + 1)
    path = _price_path(eth_prices, instrument, eth_price, seed, cex_minutes, tier, start)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}, session=_session(url)))
    if not w3.is_connected():
        raise ChainSimError(f"no Ethereum JSON-RPC node answers at {_redact(url)}")
    log = TruthLog(w3)
    deployment: Deployment | None = None
    if deployment_file is not None and deployment_file.exists():
        recorded = load_deployment(deployment_file)
        if is_live(w3, recorded):
            deployment = recorded
            log.attach(deployment)
    if event_time is not None:
        _run_in_event_time(
            w3,
            log,
            deployment,
            path,
            event_time,
            count=count,
            seed=seed,
            pool_eth=pool_eth,
            deployment_file=deployment_file,
            tokens_out=tokens_out,
            truth_path=truth_path,
        )
        return
    if deployment is None:
        deployment = deploy(w3, eth_price=path.offset(0), pool_eth=Decimal(str(pool_eth)), truth=log)
        if deployment_file is not None:
            deployment_file.parent.mkdir(parents=True, exist_ok=True)
            deployment_file.write_text(deployment.to_json())
    if tokens_out is not None:
        write_token_overlay(deployment, tokens_out)
    driver = ChainDriver(w3, deployment, log, seed=seed)
    try:
        driver.run(path, steps=count, interval=interval, realtime=realtime)
    finally:
        if truth_path is not None:
            log.write(truth_path)
    counts = log.as_dict()["counts"]
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no events"
    typer.echo(
        f"simulate-chain: {count} steps on chain {deployment.chain_id} following {path.source}: {summary}"
        + (f"; truth in {truth_path}" if truth_path else ""),
        err=True,
    )


@dataclass(frozen=True)
class EventTimeRun:
    """What ``--wallets`` / ``--block-seconds`` asked for."""

    block_seconds: int
    wallets: bool
    informed: int
    noise: int
    whales: int
    horizon_seconds: int
    threshold: Decimal
    labels_out: Path | None
    cex_trades_out: Path | None
    raw_out: Path | None = None
    ends_ago_seconds: int = 120


SETUP_SECONDS = 1800  # event time before the first step for the funding and approvals


def _run_in_event_time(
    w3: Web3,
    log: TruthLog,
    deployment: Deployment | None,
    path: PricePath,
    run: EventTimeRun,
    *,
    count: int,
    seed: int,
    pool_eth: float,
    deployment_file: Path | None,
    tokens_out: Path | None,
    truth_path: Path | None,
) -> None:
    from connectors.chainsim.cextrades import ReferenceTrades
    from connectors.chainsim.clock import EventClock
    from connectors.chainsim.deploy import deploy
    from connectors.chainsim.drive import ChainDriver, DriveConfig
    from connectors.chainsim.wallets import WalletScenario, WalletsConfig, exchange_addresses

    clock = EventClock(w3)
    first_block = w3.eth.block_number + 1
    step_times = [path.start + i * run.block_seconds for i in range(count)]
    cex = ReferenceTrades(seed)
    try:
        if deployment is None:  # deployed in event time too: the chain's blocks stay in time order
            clock.start(path.start - 2 * SETUP_SECONDS)
            deployment = deploy(w3, eth_price=path.at(path.start), pool_eth=Decimal(str(pool_eth)), truth=log)
            if deployment_file is not None:
                deployment_file.parent.mkdir(parents=True, exist_ok=True)
                deployment_file.write_text(deployment.to_json())
        if tokens_out is not None:
            write_token_overlay(deployment, tokens_out)
        # Without the traders' own noise swaps: "noise" is the noise wallets' purpose here.
        config = DriveConfig(noise_probability=0.0) if run.wallets else None
        driver = ChainDriver(w3, deployment, log, seed=seed, config=config)
        scenario = None
        if run.wallets:
            wallets_config = WalletsConfig(
                informed=run.informed,
                noise=run.noise,
                whales=run.whales,
                horizon_seconds=run.horizon_seconds,
                threshold=run.threshold,
            )
            scenario = WalletScenario(driver, wallets_config, seed, exchange_addresses())
            scenario.make_plan(path, step_times)  # before the clock moves: a path without moves fails here
        clock.start(path.start - SETUP_SECONDS)
        driver.fund()
        if scenario is not None:
            scenario.setup()
            log.wallets = scenario.truth_wallets()
        driver.run_in_event_time(
            path,
            steps=count,
            step_seconds=run.block_seconds,
            clock=clock,
            before_step=scenario.act if scenario is not None else None,
            on_step=lambda _i, at, price: cex.record(at, price),
        )
    finally:
        clock.release()
        if truth_path is not None:
            log.write(truth_path)
        if run.cex_trades_out is not None:
            cex.write(run.cex_trades_out)
    if run.labels_out is not None and scenario is not None:
        scenario.write_labels(run.labels_out)
    if run.raw_out is not None:
        from connectors.chainsim.rawdump import write_blocks

        write_blocks(w3, first_block, w3.eth.block_number, run.raw_out)
    counts = log.as_dict()["counts"]
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no events"
    planted = ""
    if scenario is not None:
        moves = sum(1 for e in log.events if e["purpose"] in ("whale_to_exchange", "whale_from_exchange"))
        planted = (
            f"; wallets: {len(scenario.informed)} informed, {len(scenario.noise)} noise, "
            f"{len(scenario.whales)} whales ({moves} exchange moves)"
        )
    first, last = (_iso(step_times[0]), _iso(step_times[-1])) if step_times else ("-", "-")
    typer.echo(
        f"simulate-chain: {count} steps on chain {deployment.chain_id} following {path.source}, "
        f"block time {first} to {last}: {summary}{planted}"
        + (f"; truth in {truth_path}" if truth_path else ""),
        err=True,
    )


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _price_path(
    file: Path | None,
    instrument: str,
    constant: str | None,
    seed: int,
    minutes: float,
    tier: str | None,
    start: int | None = None,
) -> PricePath:
    """The path; ``start`` (epoch seconds, event time) anchors the walk and a constant there."""
    from connectors.chainsim import prices

    if file is not None and constant is not None:
        raise prices.PricePathError("give --eth-prices or --eth-price, not both")
    if file is not None:
        return prices.from_trades_file(file, instrument)
    if constant is not None:
        try:
            value = Decimal(constant)
        except InvalidOperation:
            raise prices.PricePathError(f"--eth-price {constant!r} is not a number") from None
        if not value.is_finite() or value <= 0:
            raise prices.PricePathError("--eth-price must be a positive number")
        return prices.constant(value, start or 0)
    if minutes <= 0:
        raise prices.PricePathError("--cex-minutes must be positive")
    began = datetime.now(UTC) if start is None else datetime.fromtimestamp(start, UTC)
    return prices.from_cex_simulator(seed, minutes, began, bases=_cex_bases(tier))


def _cex_bases(tier: str | None) -> set[str]:
    """Base assets the CEX simulator draws walks for: the tier's venues' instruments (as simulate does)."""
    from coattail.settings import load_settings
    from connectors.registry import EXCHANGES

    settings = load_settings(tier)
    return {
        symbol.split("-")[0]
        for venue, symbols in settings.instruments.items()
        if venue in settings.active_connectors and venue in EXCHANGES
        for symbol in symbols
    } or {"ETH"}


def write_token_overlay(deployment: Deployment, path: Path) -> None:
    """A token file in config/tokens/ethereum.yaml's format holding the deployed tokens, pools and router."""
    data = {
        "tokens": {
            **{
                t.address: {
                    "symbol": t.symbol,
                    "decimals": t.decimals,
                    **({"price_ref": t.price_ref} if t.price_ref else {}),
                }
                for t in deployment.tokens.values()
            },
            # The pairs' LP tokens (their mints and burns are Transfer logs; offline needs the decimals).
            **{p.address: {"symbol": "UNI-V2", "decimals": 18} for p in deployment.pools.values()},
        },
        "pools": {
            p.address: {"protocol": p.protocol, "token0": p.token0, "token1": p.token1}
            for p in deployment.pools.values()
        },
        "programs": {deployment.router: "uniswap-v2"},
    }
    header = (
        f"# Local chain {deployment.chain_id}: the tokens and pools `coattail simulate-chain` deployed "
        f"(factory {deployment.factory}).\n# Pass it to the ethereum connector as a token file on top of "
        "config/tokens/ethereum.yaml.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=200))


def _session(url: str) -> requests.Session:
    """HTTP for the node; to a loopback node without the proxy look-up per request (a run sends thousands)."""
    import requests

    session = requests.Session()
    host = url.partition("://")[2].split("/", 1)[0].rsplit("@", 1)[-1].rsplit(":", 1)[0]
    session.trust_env = host not in ("127.0.0.1", "localhost", "[::1]")
    return session


def _recorded_anvil() -> str:
    try:
        data = json.loads((state_dir() / "dev" / "services.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get("anvil", "")) if isinstance(data, dict) else ""


def _redact(url: str) -> str:
    """The URL without its path and query (a hosted node's API key travels there)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}" if rest else url[:40]


app = simulate_chain_command
