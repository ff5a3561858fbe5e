"""`coattail simulate-chain`: Uniswap V2 and test tokens on a node, and wallets trading along a price path.

The node is ``--rpc-url``, else ANVIL_RPC_URL, else the anvil `coattail dev up` started. The ETH
price path is the CEX simulator's: ``--eth-prices FILE`` (what ``coattail simulate --out`` wrote, or
TradeEvent JSONL) or, without a file, the simulator's own fair-price walk for ``--seed`` and
``--cex-minutes`` (the same draws ``coattail simulate --seed S --minutes M`` makes for the tier's
instruments), or one constant ``--eth-price``.
"""

from __future__ import annotations

import json
import os
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
    from connectors.chainsim.prices import PricePath


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
) -> None:
    """Real Uniswap V2 on a local chain: swaps, large transfers and liquidity changes, with ground truth."""
    if steps is not None and seconds is not None:
        fail("give --steps or --seconds, not both")
    if interval <= 0:
        fail("--interval must be positive")
    if (steps is not None and steps < 0) or (seconds is not None and seconds < 0):
        fail("--steps and --seconds cannot be negative")
    realtime = seconds is not None
    count = int(seconds / interval) if seconds is not None else (100 if steps is None else steps)
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
) -> None:
    from web3 import HTTPProvider, Web3

    from connectors.chainsim.deploy import ChainSimError, deploy, is_live, load_deployment
    from connectors.chainsim.drive import ChainDriver
    from connectors.chainsim.truth import TruthLog

    path = _price_path(eth_prices, instrument, eth_price, seed, cex_minutes, tier)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise ChainSimError(f"no Ethereum JSON-RPC node answers at {_redact(url)}")
    log = TruthLog(w3)
    deployment: Deployment | None = None
    if deployment_file is not None and deployment_file.exists():
        recorded = load_deployment(deployment_file)
        if is_live(w3, recorded):
            deployment = recorded
            log.attach(deployment)
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


def _price_path(
    file: Path | None, instrument: str, constant: str | None, seed: int, minutes: float, tier: str | None
) -> PricePath:
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
        return prices.constant(value)
    if minutes <= 0:
        raise prices.PricePathError("--cex-minutes must be positive")
    return prices.from_cex_simulator(seed, minutes, datetime.now(UTC), bases=_cex_bases(tier))


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
            t.address: {
                "symbol": t.symbol,
                "decimals": t.decimals,
                **({"price_ref": t.price_ref} if t.price_ref else {}),
            }
            for t in deployment.tokens.values()
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
