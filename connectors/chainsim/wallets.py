"""The wallets scenario: informed traders, noise traders and labelled whales, all in the truth.

* **Informed** wallets know the price path: at a step where the path's price ``horizon`` later is up
  by more than ``threshold`` they buy WETH with a stablecoin, where it is down they sell WETH. Their
  trades are planned before the run from the steps where such a move follows.
* **Noise** wallets trade at random steps, random side, random size (the same sizes as the informed).
* **Whales** (labelled ``whale`` / ``fund``) move stablecoins worth 100K+ USD from and to exchange
  addresses (the shipped label set's exchange hot wallets): an outflow is the exchange sending to the
  whale (the exchange address impersonated on anvil), an inflow the whale sending back.

Trades of informed and noise wallets fall in the first ``steps - horizon`` steps, so every one has its
horizon inside the run (the CEX reference prices cover it). The wallets are fresh addresses derived
from the seed, impersonated on anvil and given ETH with ``anvil_setBalance`` (no account limit);
exchanges are funded from the deployer, whales start empty and get their first funds from an
exchange, so every whale move is a planted one.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from connectors.chainsim.deploy import ChainSimError, PoolInfo, confirm, contract, submit
from connectors.chainsim.drive import WEI, ChainDriver, _log_uniform
from connectors.chainsim.prices import PricePath

BLOCKCHAIN = "ethereum"
# Used when config/labels/ethereum.yaml has no exchange entries (both are public Etherscan labels).
FALLBACK_EXCHANGES = (
    ("0x28c6c06298d514db089934071355e5743bf21d60", "Binance 14"),
    ("0x71660c4005ba85c37ccec55d0c4493e66fe775d3", "Coinbase 1"),
)
WHALE_KINDS = ("whale", "fund")


@dataclass(frozen=True)
class Labelled:
    address: str  # checksummed (web3 wants it); the truth and the CSV write it lower-case
    label: str
    entity_type: str
    shipped: bool = False  # in the shipped label set already (no need to write it out)


@dataclass(frozen=True)
class WalletsConfig:
    informed: int = 3
    noise: int = 80
    whales: int = 2
    horizon_seconds: int = 3600
    threshold: Decimal = Decimal("0.004")  # informed trade when |move over the horizon| > 0.4 %
    informed_trades: int = 10  # per informed wallet
    noise_trades: int = 8  # per noise wallet
    trade_usd: tuple[float, float] = (2_000, 30_000)  # log-uniform, informed and noise alike
    whale_moves: int = 4  # per whale, alternately from and to an exchange (first from)
    whale_usd: tuple[float, float] = (150_000, 3_000_000)
    wallet_eth: int = 1_000  # ETH per trading wallet (gas and the ETH it sells)
    wallet_stable_usd: int = 2_000_000  # of each stablecoin per trading wallet
    exchange_stable_usd: int = 200_000_000  # of each stablecoin per exchange address

    def __post_init__(self) -> None:
        if min(self.informed, self.noise, self.whales) < 0:
            raise ChainSimError("wallet counts cannot be negative")
        if self.horizon_seconds <= 0 or self.threshold <= 0:
            raise ChainSimError("the informed horizon and threshold must be positive")
        if self.informed_trades < 1 or self.noise_trades < 1 or self.whale_moves < 1:
            raise ChainSimError("each wallet needs at least one planned action")


@dataclass(frozen=True)
class Trade:
    wallet: str
    purpose: str  # informed | noise
    buy: bool  # buy WETH with the stablecoin (else sell WETH for it)
    pool: str  # pool name
    usd: Decimal


@dataclass(frozen=True)
class WhaleMove:
    whale: Labelled
    exchange: Labelled
    outflow: bool  # exchange -> whale (else whale -> exchange)
    token: str  # symbol
    usd: Decimal  # outflow amount; an inflow sends this fraction of what the whale holds
    fraction: Decimal = Decimal(1)


@dataclass
class WalletScenario:
    driver: ChainDriver
    config: WalletsConfig
    seed: int
    exchanges: Sequence[Labelled]
    informed: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    whales: list[Labelled] = field(default_factory=list)
    plan: dict[int, list[Trade | WhaleMove]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.config
        self.informed = [_address(self.seed, "informed", i) for i in range(c.informed)]
        self.noise = [_address(self.seed, "noise", i) for i in range(c.noise)]
        self.whales = [
            Labelled(
                _address(self.seed, WHALE_KINDS[i % 2], i),
                f"Chainsim {WHALE_KINDS[i % 2].title()} {i // 2 + 1}",
                WHALE_KINDS[i % 2],
            )
            for i in range(c.whales)
        ]
        if c.whales and not self.exchanges:
            raise ChainSimError("whale moves need at least one exchange address")
        self.rng = random.Random(f"wallets/{self.seed}")

    # -- planning -------------------------------------------------------------------------------
    def make_plan(self, path: PricePath, step_times: Sequence[int]) -> None:
        """Every wallet's actions by step; informed trades where the path moves past the threshold."""
        c, rng = self.config, self.rng
        step_seconds = step_times[1] - step_times[0] if len(step_times) > 1 else 0
        # A trade lands up to a step after its step's time: one step more keeps t + H inside the run.
        ahead = -(-c.horizon_seconds // step_seconds) + 1 if step_seconds else len(step_times)
        window = len(step_times) - ahead  # steps whose trades' horizon ends inside the run
        trading = c.informed + c.noise > 0
        if trading and window < c.noise_trades:
            raise ChainSimError(
                f"{len(step_times)} steps of {step_seconds} s leave {max(window, 0)} steps with a "
                f"{c.horizon_seconds} s horizon inside the run; the wallets need {c.noise_trades}: "
                "give more --steps or --block-seconds"
            )
        pools = sorted(self.driver.d.pools)
        moves: dict[int, bool] = {}  # step -> the price goes up
        for i in range(max(window, 0)):
            now, later = path.at(step_times[i]), path.at(step_times[i] + c.horizon_seconds)
            if abs(later / now - 1) > c.threshold:
                moves[i] = later > now
        if self.informed and len(moves) < c.informed_trades:
            raise ChainSimError(
                f"the price path moves more than {c.threshold:%} within the horizon at only {len(moves)} "
                f"steps; informed wallets need {c.informed_trades}: run longer or lower the threshold"
            )
        for wallet in self.informed:
            for i in rng.sample(sorted(moves), c.informed_trades):
                self._add(i, Trade(wallet, "informed", moves[i], rng.choice(pools), self._usd(c.trade_usd)))
        for wallet in self.noise:
            for i in rng.sample(range(window), c.noise_trades):
                buy = rng.random() < 0.5
                self._add(i, Trade(wallet, "noise", buy, rng.choice(pools), self._usd(c.trade_usd)))
        for w, whale in enumerate(self.whales):
            steps = sorted(rng.sample(range(len(step_times)), min(c.whale_moves, len(step_times))))
            symbol = "USDC"
            for k, i in enumerate(steps):
                outflow = k % 2 == 0
                if outflow:  # an inflow sends back what the outflow before it brought
                    symbol = rng.choice(("USDC", "DAI"))
                exchange = self.exchanges[(w + k // 2) % len(self.exchanges)]
                fraction = Decimal(str(round(rng.uniform(0.7, 1.0), 2)))  # >= 105K back
                self._add(i, WhaleMove(whale, exchange, outflow, symbol, self._usd(c.whale_usd), fraction))

    def _add(self, step: int, action: Trade | WhaleMove) -> None:
        self.plan.setdefault(step, []).append(action)

    def _usd(self, bounds: tuple[float, float]) -> Decimal:
        return Decimal(str(round(_log_uniform(self.rng, bounds), 2)))

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """ETH and stablecoins to the trading wallets, router approvals; stablecoins to the exchanges."""
        d, c, w3 = self.driver.d, self.config, self.driver.w3
        traders = [*self.informed, *self.noise]
        for address in [*traders, *(w.address for w in self.whales), *(e.address for e in self.exchanges)]:
            _rpc(w3, "anvil_impersonateAccount", address)
            if w3.eth.get_balance(Web3.to_checksum_address(address)) < c.wallet_eth * WEI // 2:
                _rpc(w3, "anvil_setBalance", address, hex(c.wallet_eth * WEI))
        funding: list[tuple[HexBytes, str, str, int]] = []
        for token in (d.usdc, d.dai):
            erc20 = contract(w3, "TestToken", token.address)
            for receiver, usd in [(t, c.wallet_stable_usd) for t in traders] + [
                (e.address, c.exchange_stable_usd) for e in self.exchanges if self.whales
            ]:
                raw = usd * 10**token.decimals
                call = erc20.functions.transfer(receiver, raw)
                funding.append((submit(call, d.deployer, what="funding"), token.address, receiver, raw))
        approvals = [
            submit(
                contract(w3, "TestToken", token).functions.approve(d.router, 2**256 - 1),
                wallet,
                what="approving the router",
            )
            for wallet in traders
            for token in (d.usdc.address, d.dai.address, d.weth)
        ]
        for tx_hash, token_address, receiver, raw in funding:
            receipt = confirm(w3, tx_hash, "funding")
            self.driver.truth.transfer(
                receipt, token=token_address, sender=d.deployer, to=receiver, raw=raw, purpose="funding"
            )
        for tx_hash in approvals:
            confirm(w3, tx_hash, "approving the router")

    # -- acting ---------------------------------------------------------------------------------
    def act(self, step: int, eth_price: Decimal) -> None:
        for action in self.plan.get(step, []):
            if isinstance(action, Trade):
                self._trade(action, eth_price)
            else:
                self._whale(action)

    def _trade(self, t: Trade, eth_price: Decimal) -> None:
        d = self.driver.d
        pool: PoolInfo = d.pools[t.pool]
        stable = d.token_at(pool.token0 if pool.token1 == d.weth else pool.token1)
        if t.buy:
            token_in, raw_in = stable.address, int(t.usd * 10**stable.decimals)
        else:
            token_in, raw_in = d.weth, int(t.usd / eth_price * WEI)
        self.driver.swap(t.wallet, pool, token_in, raw_in, t.purpose)
        self.driver.truth.annotate_last(wallet=t.wallet.lower(), side="buy" if t.buy else "sell")

    def _whale(self, m: WhaleMove) -> None:
        token = self.driver.d.tokens[m.token]
        if m.outflow:
            sender, receiver, raw = m.exchange.address, m.whale.address, int(m.usd * 10**token.decimals)
        else:
            held = self.driver._balance(token.address, m.whale.address)
            sender, receiver, raw = m.whale.address, m.exchange.address, int(held * m.fraction)
        if raw <= 0:
            return
        purpose = "whale_from_exchange" if m.outflow else "whale_to_exchange"
        self.driver.transfer_token(sender, token.address, receiver, raw, purpose)
        self.driver.truth.annotate_last(
            wallet=m.whale.address.lower(),
            label=m.whale.label,
            entity_type=m.whale.entity_type,
            exchange=m.exchange.address.lower(),
            exchange_label=m.exchange.label,
            direction="from_exchange" if m.outflow else "to_exchange",
            usd_value=_text(Decimal(raw).scaleb(-token.decimals)),  # the stablecoins are worth 1 USD
        )

    # -- output ---------------------------------------------------------------------------------
    def truth_wallets(self) -> dict[str, Any]:
        return {
            "informed": [a.lower() for a in self.informed],
            "noise": [a.lower() for a in self.noise],
            "whales": [
                {"address": w.address.lower(), "label": w.label, "entity_type": w.entity_type}
                for w in self.whales
            ],
            "exchanges": [{"address": e.address.lower(), "label": e.label} for e in self.exchanges],
            "horizon_seconds": self.config.horizon_seconds,
            "threshold": _text(self.config.threshold),
        }

    def write_labels(self, path: Path) -> None:
        """An operator label CSV: the whales, and the exchanges the shipped label set does not hold."""
        rows = [*self.whales, *(e for e in self.exchanges if not e.shipped)]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(["address", "blockchain", "label", "entity_type", "source"])
            for row in rows:
                source = f"coattail simulate-chain --wallets (seed {self.seed})"
                out.writerow([row.address.lower(), BLOCKCHAIN, row.label, row.entity_type, source])


def exchange_addresses(count: int = 2) -> list[Labelled]:
    """Exchange hot wallets from the shipped label set (config/labels/ethereum.yaml), else the fallbacks.

    The known fallbacks come first when the label set has them too, so runs agree whichever is read.
    """
    shipped: dict[str, str] = {}
    try:
        from coattail.chains import labels

        for row in labels.load_labels().book.rows():
            if row.blockchain == BLOCKCHAIN and row.entity_type == "exchange":
                shipped[row.address.lower()] = row.label
    except Exception:  # noqa: S110 - no label set (yet) or an unreadable one: the fallbacks serve
        pass
    chosen = [
        Labelled(Web3.to_checksum_address(a), shipped.get(a, label), "exchange", a in shipped)
        for a, label in FALLBACK_EXCHANGES
    ]
    for address in sorted(set(shipped) - {a for a, _ in FALLBACK_EXCHANGES}):
        chosen.append(Labelled(Web3.to_checksum_address(address), shipped[address], "exchange", True))
    return chosen[:count]


def _address(seed: int, role: str, i: int) -> str:
    """A fresh address per (seed, role, index): nobody holds its key, anvil impersonates it."""
    return Web3.to_checksum_address(Web3.keccak(text=f"coattail-chainsim/{seed}/{role}/{i}")[12:])


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    reply = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    if "error" in reply:
        raise ChainSimError(f"the node refused {method} (is it anvil?): {str(reply['error'])[:200]}")
    return reply.get("result")


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"
