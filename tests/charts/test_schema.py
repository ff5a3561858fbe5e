"""values.schema.json kept in step with values.yaml: every value has a schema entry that accepts its
default, every schema entry is a value, and every profile's values validate against the schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.charts.helpers import CHART, PROFILES

pytestmark = pytest.mark.charts

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
# Helm adds `global` to every chart's values; it is not ours to declare.
HELM_KEYS = {"global"}


def mismatches(values: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Differences between a values tree and its schema. An object schema without `properties`
    (probes, resources, security contexts: Kubernetes objects passed through, checked by kubeconform
    on the rendered manifests) is opaque; an empty default map is an open slot whose schema may list
    optional keys (pipeline.sizing)."""
    props = schema.get("properties")
    if not isinstance(values, dict) or props is None:
        return []
    found = []
    for key, value in values.items():
        where = f"{path}{key}"
        if key not in props:
            found.append(f"{where}: in values.yaml, not in values.schema.json")
            continue
        error = next(jsonschema.Draft7Validator(props[key]).iter_errors(value), None)
        if error is not None:
            found.append(f"{where}: the schema rejects the default {value!r}: {error.message}")
        found += mismatches(value, props[key], f"{where}.")
    if values:
        found += [
            f"{path}{key}: in values.schema.json, not in values.yaml"
            for key in props
            if key not in values and not (path == "" and key in HELM_KEYS)
        ]
    if schema.get("additionalProperties", True) is not False:
        found.append(f"{path or '(root)'}: the schema accepts unknown keys (additionalProperties)")
    return found


def test_schema_and_values_have_the_same_keys_and_types() -> None:
    assert mismatches(VALUES, SCHEMA) == []


def test_the_comparison_sees_drift() -> None:
    """Guard: a new value without a schema entry, a wrong type and a stale entry are all reported."""
    values = {**VALUES, "newThing": 1, "api": {**VALUES["api"], "replicas": "two"}}
    del values["nameOverride"]
    found = "\n".join(mismatches(values, SCHEMA))
    assert "newThing: in values.yaml, not in values.schema.json" in found
    assert "api.replicas: the schema rejects the default 'two'" in found
    assert "nameOverride: in values.schema.json, not in values.yaml" in found


def merged(profile: str) -> dict[str, Any]:
    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            out[key] = (
                merge(out[key], value)
                if isinstance(value, dict) and isinstance(out.get(key), dict)
                else value
            )
        return out

    values = VALUES
    for name in PROFILES[profile]:
        values = merge(values, yaml.safe_load((CHART / name).read_text()) or {})
    return values


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_validates(profile: str) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(merged(profile))
    ]
    assert not errors, errors
