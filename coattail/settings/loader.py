"""Merge config/features.yaml, the chosen tier and COATTAIL_* overrides into one Settings object.

Environment overrides use ``__`` for nesting and are parsed as YAML scalars, e.g.
``COATTAIL_STREAM__BACKEND=kinesis``, ``COATTAIL_MODULES__MOD_001__PARAMS__Z_THRESHOLD=3``,
``COATTAIL_API__CORS_ORIGINS='[http://a, http://b]'``. ``KAFKA_BOOTSTRAP_SERVERS`` and
``DYNAMODB_ENDPOINT`` are accepted as the conventional short forms of the two endpoints.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from coattail.errors import first_problem
from coattail.settings import paths
from coattail.settings.errors import ConfigError
from coattail.settings.models import Settings
from coattail.settings.modules import validate_params

PREFIX = "COATTAIL_"
RESERVED = {"COATTAIL_CONFIG_DIR", "COATTAIL_STATE_DIR", "COATTAIL_JARS_DIR"}
ALIASES = {
    "KAFKA_BOOTSTRAP_SERVERS": ("stream", "kafka", "bootstrap_servers"),
    "DYNAMODB_ENDPOINT": ("hot_store", "endpoint_url"),
}
_MODULE_SEGMENT = re.compile(r"^MOD_(\d{3})$", re.IGNORECASE)


def load_settings(
    tier: str | None = None,
    *,
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Effective settings. ``overrides`` maps dotted paths (``stream.backend``) to values and wins last."""
    env = os.environ if env is None else env
    cfg_dir = config_dir or paths.config_dir()
    data = _read_yaml(cfg_dir / "features.yaml")
    provenance: dict[tuple[str, ...], str] = {}

    for name, path in ALIASES.items():
        if env.get(name):
            _set_path(data, path, env[name])
            provenance[path] = name
    for name, raw in sorted(env.items()):
        if name.startswith(PREFIX) and name not in RESERVED:
            path = _env_path(name)
            _set_path(data, path, _parse_scalar(raw))
            provenance[path] = f"{name}={raw!r}"
    for dotted, value in (overrides or {}).items():
        path = tuple(dotted.split("."))
        _set_path(data, path, value)
        provenance[path] = f"override {dotted}"

    chosen = tier or str(data.get("tier", "small"))
    data["tier"] = chosen
    tier_data = _resolve_tier(cfg_dir, chosen)
    data["active_modules"] = tier_data["modules"]
    data["active_connectors"] = tier_data["connectors"]
    if "spark" in tier_data:
        data["spark"] = tier_data["spark"]
    data["config_dir"] = cfg_dir
    data["state_dir"] = paths.state_dir()
    _check_module_params(data, provenance)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, provenance)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; set COATTAIL_CONFIG_DIR to the folder holding it")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def _resolve_tier(cfg_dir: Path, tier: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Tier with its ``extends`` chain flattened: modules and connectors accumulate, spark is replaced."""
    if tier in seen:
        raise ConfigError(f"tier files extend each other in a loop: {' -> '.join((*seen, tier))}")
    path = cfg_dir / "tiers" / f"{tier}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (cfg_dir / "tiers").glob("*.yaml"))
        raise ConfigError(f"unknown tier {tier!r}: no {path}; known tiers: {', '.join(known) or 'none'}")
    own = _read_yaml(path)
    unknown = set(own) - {"extends", "modules", "connectors", "spark"}
    if unknown:
        raise ConfigError(f"tier file {path} has unknown keys: {', '.join(sorted(unknown))}")
    base: dict[str, Any] = {"modules": [], "connectors": []}
    if own.get("extends"):
        base = _resolve_tier(cfg_dir, str(own["extends"]), (*seen, tier))
    merged = copy.deepcopy(base)
    for key in ("modules", "connectors"):
        merged[key] = [*base[key], *[m for m in own.get(key) or [] if m not in base[key]]]
    if "spark" in own:
        merged["spark"] = own["spark"]
    return merged


def _env_path(name: str) -> tuple[str, ...]:
    segments = name[len(PREFIX) :].split("__")
    out = []
    for seg in segments:
        match = _MODULE_SEGMENT.match(seg)
        out.append(f"MOD-{match.group(1)}" if match else seg.lower())
    return tuple(out)


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _check_module_params(data: dict[str, Any], provenance: dict[tuple[str, ...], str]) -> None:
    # Validated here (not only inside Settings) so the error names the full path of the bad param.
    modules = data.get("modules")
    if not isinstance(modules, dict):
        return
    for module_id, spec in modules.items():
        params = spec.get("params") if isinstance(spec, dict) else None
        code = spec.get("code") if isinstance(spec, dict) else None
        if isinstance(params, dict):
            try:
                validate_params(str(module_id), params, code if isinstance(code, str) else "")
            except ValidationError as exc:
                raise ConfigError(_explain(exc, provenance, ("modules", str(module_id), "params"))) from None
            except ValueError as exc:
                raise ConfigError(f"config error: modules.{module_id}.code: {exc}") from None


def _explain(
    exc: ValidationError, provenance: dict[tuple[str, ...], str], prefix: tuple[str, ...] = ()
) -> str:
    p = first_problem(exc.errors(), prefix=prefix, fallback="config", unknown="unknown setting")
    source = next((src for path, src in provenance.items() if p.loc[: len(path)] == path), None)
    origin = f" (from {source})" if source else ""
    return f"config error: {p.where}: {p.message}{origin}{p.more}"
