"""Parsed Terraform of infra/ for the structure tests.

`import hcl2` is provided by two distributions with different output shapes: checkov's
bc-python-hcl2 (every attribute wrapped in a one-element list) and python-hcl2 >= 7 (string literals
keep their quotes, blocks carry ``__is_block__``). Both are normalised here to one shape: attributes
are plain values, blocks are lists of dicts, strings are unquoted, meta keys are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = ("kinesis", "s3-lakehouse", "glue", "dynamodb", "iam", "ssm", "monitoring")
# Top-level block types whose bodies are keyed by one label (variable "x") or two (resource "t" "n").
ONE_LABEL = ("variable", "output", "module")
TWO_LABELS = ("resource", "data")


@cache
def _wraps_attributes() -> bool:
    """True for the bc-python-hcl2 shape, where `a = "b"` parses to {"a": ["b"]}."""
    return isinstance(hcl2.loads('a = "b"\n')["a"], list)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return _unquote(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return _body(value)
    return value


def _body(body: dict[str, Any]) -> dict[str, Any]:
    """A block body: drop meta keys, unquote labels, unwrap bc-python-hcl2's attribute lists once."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if (
            _wraps_attributes()
            and isinstance(value, list)
            and len(value) == 1
            and not isinstance(value[0], dict)
        ):
            value = value[0]
        out[_unquote(key)] = _value(value)
    return out


def _merge(target: dict[str, Any], kind: str, body: dict[str, Any]) -> None:
    bucket = target.setdefault(kind, {})
    if kind in TWO_LABELS:
        for rtype, named in body.items():
            bucket.setdefault(rtype, {}).update(named)
    else:
        bucket.update(body)


@cache
def load_dir(directory: Path) -> dict[str, Any]:
    """Every *.tf file of one directory merged: {"resource": {type: {name: body}}, "variable": {...}, ...}."""
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        parsed = _body(hcl2.loads(path.read_text(encoding="utf-8")))
        for kind, entries in parsed.items():
            for body in entries if isinstance(entries, list) else [entries]:
                if kind in ONE_LABEL or kind in TWO_LABELS or kind == "locals":
                    _merge(merged, kind, body)
                else:  # terraform {} and provider {} blocks
                    merged.setdefault(kind, []).append(body)
    return merged


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a body (e.g. ttl, stream_mode_details)."""
    blocks = blocks_of(body, name)
    assert len(blocks) == 1, f"expected exactly one {name} block, found {len(blocks)}"
    return blocks[0]


def blocks_of(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """All nested blocks `name` of a body, in file order."""
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


def as_list(value: Any) -> list[Any]:
    """A list attribute as a list (a lone scalar becomes a one-element list)."""
    return value if isinstance(value, list) else [value]


def squash(expr: str) -> str:
    """An expression without whitespace, so both parsers' renderings compare equal."""
    return "".join(expr.split())


@pytest.fixture(scope="session")
def root() -> dict[str, Any]:
    return load_dir(INFRA)


@pytest.fixture(scope="session")
def module() -> Callable[[str], dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        return load_dir(INFRA / "modules" / name)

    return load


@pytest.fixture(scope="session")
def all_dirs() -> list[dict[str, Any]]:
    return [load_dir(INFRA), *(load_dir(INFRA / "modules" / m) for m in MODULES)]


def as_map(value: Any) -> dict[str, Any]:
    """A map attribute as a dict (bc-python-hcl2 wraps maps in a one-element list)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return dict(value[0])
    assert isinstance(value, dict), f"expected a map, got {value!r}"
    return value
