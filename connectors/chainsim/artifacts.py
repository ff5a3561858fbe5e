"""Contract ABIs and creation bytecode from the npm build artifacts (scripts/setup.d/60-chain.sh).

Uniswap's packages ship their compiled builds (``build/*.json`` with ``abi`` and ``bytecode``); the
Router02 build links the pair's init-code hash of the v2-core build, so both come from the pinned
packages unchanged. Our own test ERC-20 is compiled once by chain/build.js into ``artifacts/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from coattail.devservices.anvil import chain_cache_dir
from coattail.errors import CoattailError

# Contract name -> file under the chain cache dir.
SOURCES = {
    "UniswapV2Factory": "node_modules/@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "node_modules/@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "node_modules/@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "WETH9": "node_modules/@uniswap/v2-periphery/build/WETH9.json",
    "TestToken": "artifacts/TestToken.json",
}


class ArtifactError(CoattailError, RuntimeError):
    """A build artifact is missing or unreadable; the message says how to make it."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code


@cache
def load(name: str, base: Path | None = None) -> Artifact:
    if name not in SOURCES:
        raise ArtifactError(f"unknown contract {name!r}; known: {', '.join(SOURCES)}")
    path = (base or chain_cache_dir()) / SOURCES[name]
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"no build artifact {path}; run `bash scripts/setup.d/60-chain.sh` (or `make setup`) first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"build artifact {path} is unreadable: {exc}") from None
    code = data.get("bytecode") or (data.get("evm") or {}).get("bytecode", {}).get("object", "")
    if not isinstance(code, str) or not code or not isinstance(data.get("abi"), list):
        raise ArtifactError(f"build artifact {path} has no abi or bytecode")
    return Artifact(name, data["abi"], code if code.startswith("0x") else "0x" + code)


def available(base: Path | None = None) -> bool:
    """True when every artifact is on disk (the set-up step has run)."""
    root = base or chain_cache_dir()
    return all((root / rel).is_file() for rel in SOURCES.values())
