"""Deploy the local DeFi world from the npm build artifacts: Uniswap V2 with WETH and two test tokens.

On a fresh chain :func:`deploy` puts up UniswapV2Factory, WETH9, UniswapV2Router02, a USDC-like
6-decimal token and a DAI-like 18-decimal one (our TestToken, the whole supply with the deployer), then
seeds the USDC/WETH and DAI/WETH pairs through the router's ``addLiquidityETH`` at the given ETH
price. The result is a :class:`Deployment` with every address and each token's decimals; it round-trips
through JSON so a later run can reuse the world (:func:`load_deployment`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.types import RPCEndpoint, TxReceipt

from coattail.errors import CoattailError
from connectors.chainsim import amm, artifacts

if TYPE_CHECKING:
    from connectors.chainsim.truth import TruthLog

NO_DEADLINE = 2**255  # the router wants a deadline; the simulator's transactions never expire
DEFAULT_ETH_PRICE = Decimal(3000)
DEFAULT_POOL_ETH = Decimal(1000)  # WETH in each pool at the start
SUPPLY_WHOLE = 10**12  # whole tokens minted to the deployer for each test token
CALL_GAS = 6_000_000  # gas limit of every contract call sent (a swap takes ~130K, creating a pair ~2.5M)


class ChainSimError(CoattailError, RuntimeError):
    """A transaction of the simulator failed or the chain is not the expected one."""


@dataclass(frozen=True)
class TokenInfo:
    symbol: str
    name: str
    address: str
    decimals: int
    price_ref: str | None  # as in config/tokens/ethereum.yaml: "usd" or "binance:ETH-USDT"


@dataclass(frozen=True)
class PoolInfo:
    name: str  # "USDC/WETH": the tokens as the simulator names the pair, not token0/token1 order
    address: str
    token0: str
    token1: str
    protocol: str = "uniswap-v2"


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    deployer: str
    factory: str
    router: str
    weth: str
    block_number: int  # the last block of the deployment (the world exists from the next one on)
    tokens: dict[str, TokenInfo] = field(default_factory=dict)  # by symbol; WETH included
    pools: dict[str, PoolInfo] = field(default_factory=dict)  # by name

    @property
    def usdc(self) -> TokenInfo:
        return self.tokens["USDC"]

    @property
    def dai(self) -> TokenInfo:
        return self.tokens["DAI"]

    @property
    def usdc_weth(self) -> PoolInfo:
        return self.pools["USDC/WETH"]

    def token_at(self, address: str) -> TokenInfo:
        for token in self.tokens.values():
            if token.address.lower() == address.lower():
                return token
        raise KeyError(address)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Deployment:
        try:
            return cls(
                chain_id=int(data["chain_id"]),
                deployer=str(data["deployer"]),
                factory=str(data["factory"]),
                router=str(data["router"]),
                weth=str(data["weth"]),
                block_number=int(data["block_number"]),
                tokens={k: TokenInfo(**v) for k, v in data["tokens"].items()},
                pools={k: PoolInfo(**v) for k, v in data["pools"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ChainSimError(f"not a deployment record: {exc!s:.120}") from None


@cache
def contract(w3: Web3, name: str, address: str) -> Contract:
    """A bound contract of one of the artifacts' kinds at ``address`` (built once: ABI parsing is slow)."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.load(name).abi)


def send(w3: Web3, call: Any, sender: str, value: int = 0, what: str = "transaction") -> TxReceipt:
    """Send a contract call from an unlocked account, wait for it, fail loudly on a revert."""
    return confirm(w3, submit(call, sender, value, what), what)


def submit(call: Any, sender: str, value: int = 0, what: str = "transaction") -> HexBytes:
    """Send without waiting (independent transactions can share a block); :func:`confirm` waits.

    A call to a deployed contract goes out as one ``eth_sendTransaction`` with a fixed gas limit (the
    node prices it and charges the gas used): web3's ``transact`` adds a gas estimate and fee look-ups,
    a dozen requests per transaction, which made the simulator's long runs slow. A call that would
    revert is mined as reverted and :func:`confirm` says so.
    """
    try:
        if getattr(call, "address", None) is None:  # a constructor: web3 estimates its gas
            return HexBytes(call.transact({"from": sender, "value": value}))
        tx = {"from": sender, "to": call.address, "gas": hex(CALL_GAS)}
        return send_raw(call.w3, {**tx, "data": call._encode_transaction_data()}, value)
    except ChainSimError as exc:
        raise ChainSimError(f"{what} failed: {exc}") from None
    except Exception as exc:  # web3 raises many kinds (revert, RPC error): one line out
        raise ChainSimError(f"{what} failed: {_first_line(exc)}") from None


def send_raw(w3: Web3, tx: dict[str, Any], value: int = 0) -> HexBytes:
    """``eth_sendTransaction`` of ``tx`` (hex fields) from an unlocked or impersonated account."""
    if value:
        tx = {**tx, "value": hex(value)}
    reply = w3.provider.make_request(RPCEndpoint("eth_sendTransaction"), [tx])
    if "error" in reply:
        message = reply["error"].get("message", reply["error"]) if isinstance(reply["error"], dict) else ""
        raise ChainSimError(str(message or reply["error"]).splitlines()[0][:200])
    return HexBytes(reply["result"])


def confirm(w3: Web3, tx_hash: HexBytes, what: str = "transaction") -> TxReceipt:
    """The receipt, polled briefly (instant mining answers within milliseconds; --block-time later)."""
    deadline, pause = time.monotonic() + 120, 0.001
    while True:
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            break
        except TransactionNotFound:
            if time.monotonic() > deadline:
                raise ChainSimError(f"{what} failed: no receipt for {tx_hash.to_0x_hex()} in 120 s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        except Exception as exc:  # a dropped connection
            raise ChainSimError(f"{what} failed: {_first_line(exc)}") from None
    if receipt["status"] != 1:
        raise ChainSimError(f"{what} reverted in tx {receipt['transactionHash'].to_0x_hex()}")
    return receipt


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def deploy_contract(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    art = artifacts.load(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    receipt = send(w3, factory.constructor(*args), sender, what=f"deploying {name}")
    address = receipt["contractAddress"]
    if address is None:
        raise ChainSimError(f"deploying {name} gave no contract address")
    return w3.eth.contract(address=address, abi=art.abi)


def pair_address(factory: str, token_a: str, token_b: str) -> str:
    """The pair's CREATE2 address, as UniswapV2Library.pairFor computes it (v2-core build's init code)."""
    token0, token1 = sorted((token_a, token_b), key=str.lower)
    salt = keccak(bytes.fromhex(token0[2:]) + bytes.fromhex(token1[2:]))
    init_hash = keccak(hexstr=artifacts.load("UniswapV2Pair").bytecode)
    raw = keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + init_hash)[12:]
    return Web3.to_checksum_address(raw)


def deploy(
    w3: Web3,
    *,
    deployer: str | None = None,
    eth_price: Decimal = DEFAULT_ETH_PRICE,
    pool_eth: Decimal = DEFAULT_POOL_ETH,
    truth: TruthLog | None = None,
) -> Deployment:
    """Deploy everything from ``deployer`` (default: the node's first account) and seed the pools.

    Each pool gets ``pool_eth`` WETH and its worth of the stablecoin at ``eth_price`` through the
    router's ``addLiquidityETH`` (which creates the pair); ``truth`` lists those as liquidity_add.
    """
    accounts = w3.eth.accounts
    if deployer is None:
        if not accounts:
            raise ChainSimError("the node has no unlocked accounts to deploy from (is it anvil?)")
        deployer = accounts[0]
    deployer = Web3.to_checksum_address(deployer)
    if eth_price <= 0 or pool_eth <= 0:
        raise ChainSimError("eth_price and pool_eth must be positive")
    if w3.eth.get_balance(deployer) < int(pool_eth * 2 * 10**18):
        raise ChainSimError(f"the deployer {deployer} holds less than the {pool_eth * 2} ETH the pools need")

    factory = deploy_contract(w3, "UniswapV2Factory", deployer, deployer)
    weth = deploy_contract(w3, "WETH9", deployer)
    router = deploy_contract(w3, "UniswapV2Router02", deployer, factory.address, weth.address)
    usdc = deploy_contract(w3, "TestToken", deployer, "USD Coin (local)", "USDC", 6, SUPPLY_WHOLE * 10**6)
    dai = deploy_contract(
        w3, "TestToken", deployer, "Dai Stablecoin (local)", "DAI", 18, SUPPLY_WHOLE * 10**18
    )
    tokens = {
        "WETH": TokenInfo("WETH", "Wrapped Ether", weth.address, 18, "binance:ETH-USDT"),
        "USDC": TokenInfo("USDC", "USD Coin (local)", usdc.address, 6, "usd"),
        "DAI": TokenInfo("DAI", "Dai Stablecoin (local)", dai.address, 18, "usd"),
    }
    pools = {}
    for symbol in ("USDC", "DAI"):
        token0, token1 = sorted((tokens[symbol].address, weth.address), key=str.lower)
        pool = PoolInfo(f"{symbol}/WETH", pair_address(factory.address, token0, token1), token0, token1)
        pools[pool.name] = pool
    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        deployer=deployer,
        factory=factory.address,
        router=router.address,
        weth=weth.address,
        block_number=0,
        tokens=tokens,
        pools=pools,
    )
    if truth is not None:
        truth.attach(deployment)

    eth_raw = int(pool_eth * 10**18)
    for symbol, token in (("USDC", usdc), ("DAI", dai)):
        pool = pools[f"{symbol}/WETH"]
        token_raw = int(pool_eth * eth_price * 10 ** tokens[symbol].decimals)
        send(w3, token.functions.approve(router.address, 2**256 - 1), deployer, what=f"approving {symbol}")
        receipt = send(
            w3,
            router.functions.addLiquidityETH(token.address, token_raw, 0, 0, deployer, NO_DEADLINE),
            deployer,
            value=eth_raw,
            what=f"seeding the {pool.name} pool",
        )
        created = factory.functions.getPair(token.address, weth.address).call()
        if created != pool.address:
            raise ChainSimError(f"the factory made the {pool.name} pair at {created}, not {pool.address}")
        if truth is not None:
            raw0, raw1 = (token_raw, eth_raw) if pool.token0 == token.address else (eth_raw, token_raw)
            truth.liquidity(
                receipt,
                kind="liquidity_add",
                pool=pool,
                provider=deployer,
                raw0=raw0,
                raw1=raw1,
                liquidity_raw=amm.liquidity_minted(raw0, raw1, 0, 0, 0),
                reserve0_raw=raw0,
                reserve1_raw=raw1,
                purpose="seed_pool",
            )
    final = replace(deployment, block_number=w3.eth.block_number)
    if truth is not None:
        truth.attach(final)
    return final


def load_deployment(path: Path) -> Deployment:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChainSimError(f"deployment file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ChainSimError(f"deployment file {path} is unreadable: {exc!s:.120}") from None
    if not isinstance(data, dict):
        raise ChainSimError(f"deployment file {path} does not hold a deployment record")
    return Deployment.from_mapping(data)


def is_live(w3: Web3, deployment: Deployment) -> bool:
    """True when ``deployment`` exists on this chain (same chain id, code at factory and router)."""
    if w3.eth.chain_id != deployment.chain_id:
        return False
    return all(
        len(w3.eth.get_code(Web3.to_checksum_address(a))) > 0 for a in (deployment.factory, deployment.router)
    )


def reserves(w3: Web3, pool: PoolInfo) -> tuple[int, int]:
    """The pair's (reserve0, reserve1) in raw units."""
    r0, r1, _ = contract(w3, "UniswapV2Pair", pool.address).functions.getReserves().call()
    return int(r0), int(r1)


def eth_price_of(w3: Web3, deployment: Deployment, pool_name: str = "USDC/WETH") -> Decimal:
    """The pool's marginal price of one WETH in the stablecoin."""
    pool = deployment.pools[pool_name]
    r0, r1 = reserves(w3, pool)
    stable = deployment.token_at(pool.token0 if pool.token1 == deployment.weth else pool.token1)
    r_weth, r_stable = (r1, r0) if pool.token1 == deployment.weth else (r0, r1)
    return amm.price(r_weth, r_stable, 18, stable.decimals)
