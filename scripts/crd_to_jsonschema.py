"""Turn CustomResourceDefinition YAML files into kubeconform JSON schemas.

kubeconform looks schemas up as ``{kind}_{version}.json`` (lower-case kind); each served version of
each CRD becomes one file, with ``additionalProperties: false`` added wherever the CRD lists
properties so that strict validation catches misspelt fields.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def _close_objects(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _close_objects(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close_objects(v) for v in node]
    return node


def convert(crd_path: Path, out_dir: Path) -> list[Path]:
    written = []
    for doc in yaml.safe_load_all(crd_path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        kind = doc["spec"]["names"]["kind"].lower()
        for version in doc["spec"]["versions"]:
            schema = _close_objects(version["schema"]["openAPIV3Schema"])
            target = out_dir / f"{kind}_{version['name']}.json"
            target.write_text(json.dumps(schema, indent=1))
            written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("crds", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for crd in args.crds:
        for path in convert(crd, args.out):
            print(f"[setup] crds: wrote {path.name}")


if __name__ == "__main__":
    main()
