"""Extract the machine-readable contract of the Track API operations cio-sync uses from Customer.io's spec.

    python -m tests.contract.extract customerio-track-openapi.json

writes ``tests/contract/track-api.json``: for ``getRegion``, ``identify`` (PUT), ``delete``,
``suppress``, ``unsuppress`` and ``batch``, the
method, path, security, parameters, request body schema and response schemas, with every
component they reference, and none of the prose (descriptions, summaries, examples, code samples,
titles). The facts of the published contract, not its text.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

OPERATIONS = {
    "getRegion": ("get", "/api/v1/accounts/region"),
    "identify": ("put", "/api/v1/customers/{identifier}"),
    "delete": ("delete", "/api/v1/customers/{identifier}"),
    "suppress": ("post", "/api/v1/customers/{identifier}/suppress"),
    "unsuppress": ("post", "/api/v1/customers/{identifier}/unsuppress"),
    "batch": ("post", "/api/v2/batch"),
}
# The v1 error answer the operations that list a 400 share (identify lists none of its own).
SHARED = ["#/components/responses/400"]
PROSE = {
    "description",
    "summary",
    "example",
    "examples",
    "title",
    "x-codeSamples",
    "x-scalar-ignore",
    "x-additionalPropertiesName",
    "externalDocs",
    "tags",
    "servers",
}
# Keywords whose value maps names to schemas: the names are data, not keywords to strip.
NAMED = {"properties", "patternProperties", "$defs"}
OUTPUT = Path(__file__).with_name("track-api.json")


def strip(node: Any, named: bool = False) -> Any:
    """``node`` without prose keys, keeping names under ``properties`` and the like."""
    if isinstance(node, dict):
        return {
            key: strip(value, named=key in NAMED and not named)
            for key, value in node.items()
            if named or key not in PROSE
        }
    if isinstance(node, list):
        return [strip(value) for value in node]
    return node


def refs(node: Any) -> set[str]:
    """Every ``$ref`` inside ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def lookup(spec: dict[str, Any], ref: str) -> Any:
    """The node a local ``#/a/b`` reference points at."""
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The contract document: the operations, and the components they reach."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS.values():
        keep = {k: v for k, v in spec["paths"][path][method].items() if k not in PROSE}
        # suppress and unsuppress declare their identifier on the path, for every method on it.
        if "parameters" in spec["paths"][path] and "parameters" not in keep:
            keep["parameters"] = spec["paths"][path]["parameters"]
        paths.setdefault(path, {})[method] = strip(keep)
    contract: dict[str, Any] = {
        "source": f"{spec['info']['title']} {spec['info']['version']} (OpenAPI {spec['openapi']}), prose removed",
        "operations": {name: {"method": m, "path": p} for name, (m, p) in OPERATIONS.items()},
        "paths": paths,
        "components": {},
    }
    for method, path in OPERATIONS.values():
        for requirement in spec["paths"][path][method].get("security", []):
            for name in requirement:
                schemes = contract["components"].setdefault("securitySchemes", {})
                schemes[name] = strip(spec["components"]["securitySchemes"][name])
    pending = refs(paths) | set(SHARED)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if not re.fullmatch(r"#/components/[A-Za-z]+/[^/]+", ref):
            raise ValueError(f"unexpected reference {ref}")
        _, _, kind, name = ref.split("/")
        node = strip(lookup(spec, ref))
        contract["components"].setdefault(kind, {})[name] = node
        pending |= refs(node)
    contract["components"] = {k: dict(sorted(v.items())) for k, v in sorted(contract["components"].items())}
    return contract


def main() -> None:
    """Read the spec named on the command line and write the contract beside this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="Customer.io's Track API OpenAPI description (JSON)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT.name})")
    args = parser.parse_args()
    contract = extract(json.loads(args.spec.read_text(encoding="utf-8")))
    args.output.write_text(json.dumps(contract, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    components = sum(len(v) for v in contract["components"].values())
    print(f"wrote {args.output}: {len(contract['paths'])} paths, {components} components")


if __name__ == "__main__":
    main()
