"""The wallet label registry: who an address belongs to (exchange, fund, market maker, bridge, ...).

The shipped dataset is ``config/labels/<chain>.yaml`` (publicly documented addresses, each with its
source); operator files (CSV or JSON, same keys) are merged on top in order, a later entry winning per
(blockchain, address). A bad entry is one line in :attr:`LoadedLabels.problems` and the rest loads; a
file that cannot be read at all is a :class:`LabelError`.

Addresses are compared in one form (:func:`normalize_address`): lower-case hex on Ethereum (the
checksum is presentation), base58 exactly as written on Solana (it is case-sensitive).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coattail.contracts.onchain import BLOCKCHAINS
from coattail.contracts.types import UtcDatetime
from coattail.errors import CoattailError, first_problem
from coattail.settings.paths import config_dir

ENTITY_TYPES = ("exchange", "fund", "market_maker", "whale", "bridge", "protocol", "smart_money")
REQUIRED_KEYS = ("address", "blockchain", "label", "entity_type", "source")
OPTIONAL_KEYS = ("updated_at",)
LABEL_MAX_CHARS = 100
SOURCE_MAX_CHARS = 500
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BASE58_ADDRESS = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")


class LabelError(CoattailError, ValueError):
    """A label file or an address that cannot be used; the message is one sentence."""


def normalize_address(blockchain: str, address: str) -> str:
    """The one form an address is stored and looked up in; LabelError when it is not an address."""
    text = address.strip() if isinstance(address, str) else ""
    if blockchain == "ethereum":
        if not _HEX_ADDRESS.fullmatch(text):
            raise LabelError(f"{text[:50]!r} is not an Ethereum address (0x and 40 hex digits)")
        return text.lower()
    if blockchain == "solana":
        if not _BASE58_ADDRESS.fullmatch(text):
            raise LabelError(f"{text[:50]!r} is not a Solana address (32-44 base58 characters)")
        return text
    raise LabelError(f"unknown chain {str(blockchain)[:40]!r}; known: {', '.join(BLOCKCHAINS)}")


class WalletLabel(BaseModel):
    """One row of ``labeled_wallets`` (its Iceberg columns derive from this model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str
    blockchain: str
    label: str = Field(min_length=1, max_length=LABEL_MAX_CHARS)
    entity_type: str
    source: str = Field(min_length=1, max_length=SOURCE_MAX_CHARS)
    updated_at: UtcDatetime  # when the entry was last verified; unchanged entries keep theirs

    @field_validator("blockchain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        if value not in BLOCKCHAINS:
            raise ValueError(f"unknown chain {value[:40]!r}; known: {', '.join(BLOCKCHAINS)}")
        return value

    @field_validator("entity_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ENTITY_TYPES:
            raise ValueError(f"unknown entity_type {value[:40]!r}; known: {', '.join(ENTITY_TYPES)}")
        return value

    @field_validator("label", "source", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _normalized(self) -> WalletLabel:
        address = normalize_address(self.blockchain, self.address)
        if address != self.address:
            object.__setattr__(self, "address", address)  # frozen: set once, during validation
        return self

    @property
    def key(self) -> tuple[str, str]:
        return (self.blockchain, self.address)

    def same_content(self, other: WalletLabel) -> bool:
        """Same label, type and source (``updated_at`` aside): a refresh leaves such a row alone."""
        return (self.label, self.entity_type, self.source) == (other.label, other.entity_type, other.source)


class LabelBook:
    """Labels by (blockchain, normalized address); later rows win."""

    def __init__(self, rows: Iterable[WalletLabel] = ()) -> None:
        self._labels: dict[tuple[str, str], WalletLabel] = {}
        for row in rows:
            self._labels[row.key] = row

    def get(self, blockchain: str, address: str | None) -> WalletLabel | None:
        if not address:
            return None
        try:
            return self._labels.get((blockchain, normalize_address(blockchain, address)))
        except LabelError:  # not an address of that chain: nobody we know
            return None

    def rows(self) -> list[WalletLabel]:
        return [self._labels[k] for k in sorted(self._labels)]

    def merged(self, rows: Iterable[WalletLabel]) -> LabelBook:
        """A new book with ``rows`` on top of this one."""
        return LabelBook([*self._labels.values(), *rows])

    def __len__(self) -> int:
        return len(self._labels)


@dataclass
class LoadedLabels:
    book: LabelBook
    problems: list[str] = field(default_factory=list)  # one line per skipped entry


def load_labels(
    extra_files: Sequence[str | Path] = (),
    cfg_dir: Path | None = None,
    *,
    default_updated_at: datetime | None = None,
) -> LoadedLabels:
    """The shipped ``config/labels/<chain>.yaml`` of every chain, then ``extra_files`` on top, in order.

    An operator entry without ``updated_at`` gets ``default_updated_at`` (the label refresh passes its
    run time), else its file's modification time.
    """
    folder = (cfg_dir or config_dir()) / "labels"
    rows: list[WalletLabel] = []
    problems: list[str] = []
    for chain in BLOCKCHAINS:
        found, bad = _shipped(folder / f"{chain}.yaml", chain)
        rows += found
        problems += bad
    for path in map(Path, extra_files):
        found, bad = read_operator_file(path, default_updated_at)
        rows += found
        problems += bad
    return LoadedLabels(LabelBook(rows), problems)


def read_operator_file(
    path: Path, default_updated_at: datetime | None = None
) -> tuple[list[WalletLabel], list[str]]:
    """The entries of one operator file (``.csv``, else JSON) and one line per bad entry."""
    text = _read_text(path)
    default_time = default_updated_at or datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(
        microsecond=0
    )
    if path.suffix.lower() == ".csv":
        return _csv_entries(path, text, default_time)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelError(f"label file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise LabelError(f"label file {path} must hold a JSON list of label objects")
    return _entries(path, ((f"entry {i}", e) for i, e in enumerate(data, 1)), None, default_time)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # (a spreadsheet's BOM is not part of the header)
    except FileNotFoundError:
        raise LabelError(f"label file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"label file {path} cannot be read: {exc}") from None


def _shipped(path: Path, chain: str) -> tuple[list[WalletLabel], list[str]]:
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        raise LabelError(f"label file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    entries = data.get("labels") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise LabelError(f"label file {path} must have a 'labels' list")
    return _entries(path, ((f"labels[{i}]", e) for i, e in enumerate(entries)), chain, None)


def _csv_entries(path: Path, text: str, default_time: datetime) -> tuple[list[WalletLabel], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise LabelError(
            f"label file {path} has no valid header (needs {','.join(REQUIRED_KEYS)}[,updated_at]; "
            f"missing {', '.join(missing)})"
        )
    reader.fieldnames = header

    def rows() -> Iterable[tuple[str, Any]]:
        for row in reader:
            yield f"line {reader.line_num}", row

    return _entries(path, rows(), None, default_time)


def _entries(
    path: Path, entries: Iterable[tuple[str, Any]], chain: str | None, default_time: datetime | None
) -> tuple[list[WalletLabel], list[str]]:
    """Valid labels and one ``file, where: reason`` line per bad entry. ``chain``: the shipped file's
    own chain (its entries name no blockchain); ``default_time``: updated_at of entries without one."""
    good: list[WalletLabel] = []
    problems: list[str] = []
    allowed = {*REQUIRED_KEYS, *OPTIONAL_KEYS}
    for where, entry in entries:
        try:
            good.append(_label(entry, allowed, chain, default_time))
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}, {where}: {_reason(exc)}")
    return good, problems


def _label(entry: Any, allowed: set[str], chain: str | None, default_time: datetime | None) -> WalletLabel:
    if not isinstance(entry, Mapping):
        raise TypeError(f"expected an object with {', '.join(REQUIRED_KEYS)}, got {type(entry).__name__}")
    if None in entry:  # csv.DictReader puts surplus cells under the key None
        raise ValueError("more cells than header columns")
    values = {str(k).strip(): v.strip() if isinstance(v, str) else v for k, v in entry.items()}
    values = {k: v for k, v in values.items() if v not in (None, "")}  # an empty cell is no value
    unknown = sorted(set(values) - allowed - ({"blockchain"} if chain else set()))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}")
    if chain is not None and values.setdefault("blockchain", chain) != chain:
        raise ValueError(f"blockchain {values['blockchain']!r} in the {chain} file")
    if "updated_at" not in values and default_time is not None:
        values["updated_at"] = default_time
    when = values.get("updated_at")
    if isinstance(when, date) and not isinstance(when, datetime):  # YAML dates: midnight UTC of that day
        values["updated_at"] = datetime(when.year, when.month, when.day, tzinfo=UTC)
    elif isinstance(when, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", when.strip()):
        values["updated_at"] = f"{when.strip()}T00:00:00Z"
    return WalletLabel.model_validate(values)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return first_problem(exc.errors()).line()
    return str(exc)


def label_rows(labels: Iterable[WalletLabel]) -> list[dict[str, Any]]:
    """Labels as ``labeled_wallets`` rows (plain dicts; datetimes stay datetimes)."""
    return [{**label.model_dump(), "updated_at": label.updated_at} for label in labels]  # (dump gives text)
