"""Extract the machine-readable contract of the App API operations ``cio-sync verify`` uses.

    python -m tests.contract.extract_app customerio-app-api-excerpt.json

writes ``tests/contract/app-api.json``: for ``getPeopleById`` (POST) and ``getPersonAttributes``
(GET), the method, path, parameters (the path item's too), security, request body and response
schemas, and the security schemes; none of the prose. The excerpt inlines every schema (no ``$ref``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .extract import PROSE, refs, strip

OPERATIONS = {
    "getPeopleById": ("post", "/v1/customers/attributes"),
    "getPersonAttributes": ("get", "/v1/customers/{customer_id}/attributes"),
}
OUTPUT = Path(__file__).with_name("app-api.json")


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The contract document: the operations with the path items' parameters, and the security schemes."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS.values():
        item = spec["paths"][path]
        keep = {k: v for k, v in item[method].items() if k not in PROSE}
        paths.setdefault(path, {})[method] = strip(keep)
        if "parameters" in item:
            paths[path]["parameters"] = strip(item["parameters"])
    if refs(paths):
        raise ValueError("the excerpt was expected to inline every schema")
    schemes = {
        name: strip(spec["components"]["securitySchemes"][name])
        for method, path in OPERATIONS.values()
        for requirement in spec["paths"][path][method].get("security", [])
        for name in requirement
    }
    info = spec["info"]
    return {
        "source": f"{info['title']} {info['version']} (OpenAPI {spec['openapi']}), excerpt, prose removed",
        "operations": {name: {"method": m, "path": p} for name, (m, p) in OPERATIONS.items()},
        "paths": paths,
        "components": {"securitySchemes": schemes},
    }


def main() -> None:
    """Read the excerpt named on the command line and write the contract beside this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", type=Path, help="the excerpt of Customer.io's App API description (JSON)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT.name})")
    args = parser.parse_args()
    contract = extract(json.loads(args.spec.read_text(encoding="utf-8")))
    args.output.write_text(json.dumps(contract, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.output}: {len(contract['paths'])} paths")


if __name__ == "__main__":
    main()
