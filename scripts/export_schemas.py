"""Write the JSON Schemas of every public payload into schemas/, from the app's own models.

    python scripts/export_schemas.py [--check]

schemas/openapi.json is the whole API; schemas/<Name>.schema.json is each payload on its own
(request and response bodies, with references resolved inside the file). With --check nothing
is written and the exit code says whether schemas/ is up to date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from digital_village.app import create_app
from digital_village.config import Settings

OUT = Path(__file__).resolve().parents[1] / "schemas"


def _resolve(node: Any, components: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen:  # a recursive type: keep the reference to its definition
                return {"$ref": f"#/$defs/{name}"}
            return _resolve(components[name], components, seen | {name})
        return {key: _resolve(value, components, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, components, seen) for item in node]
    return node


def render() -> dict[str, str]:
    """File name → content, exactly as written."""
    spec = create_app(Settings(log_format="text", log_level="WARNING")).openapi()
    components: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    files = {"openapi.json": json.dumps(spec, ensure_ascii=False, indent=2, sort_keys=True) + "\n"}
    for name, schema in sorted(components.items()):
        standalone = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": schema.get("title", name),
            **_resolve(schema, components, frozenset({name})),
            "$defs": {name: _resolve(schema, components, frozenset({name}))},
        }
        files[f"{name}.schema.json"] = (
            json.dumps(standalone, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether up to date")
    args = parser.parse_args()
    files = render()
    existing = {p.name for p in OUT.glob("*.json")} if OUT.is_dir() else set()
    stale = sorted(
        name
        for name, text in files.items()
        if not (OUT / name).is_file() or (OUT / name).read_text("utf-8") != text
    ) + sorted(existing - set(files))
    if args.check:
        if stale:
            print("schemas/ is out of date: " + ", ".join(stale))
            print("run: python scripts/export_schemas.py")
            sys.exit(1)
        print(f"schemas/ is up to date ({len(files)} files)")
        return
    OUT.mkdir(exist_ok=True)
    for name in existing - set(files):
        (OUT / name).unlink()
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT}")


if __name__ == "__main__":
    main()
