#!/usr/bin/env python3
"""Validate updraft's real --json outputs against the JSON Schemas in docs/json/.

usage: validate_json.py SCHEMA_DIR OUTPUT_DIR

Every OUTPUT_DIR/<name>.<anything>.json is validated against SCHEMA_DIR/<name>.schema.json.
Fails when a document does not validate, when a schema is not a valid Draft 2020-12
schema, when an output has no schema, and when a schema has no output (so every
documented command is exercised). Uses the `jsonschema` package (.ci/setup installs it).
"""
import json
import os
import sys

import jsonschema


def main(schema_dir, output_dir):
    schemas = {}
    for f in sorted(os.listdir(schema_dir)):
        if f.endswith(".schema.json"):
            with open(os.path.join(schema_dir, f)) as fh:
                schema = json.load(fh)
            jsonschema.Draft202012Validator.check_schema(schema)
            schemas[f[: -len(".schema.json")]] = jsonschema.Draft202012Validator(schema)
    seen = set()
    problems = []
    for f in sorted(os.listdir(output_dir)):
        if not f.endswith(".json"):
            continue
        name = f.split(".", 1)[0]
        if name not in schemas:
            problems.append(f"{f}: no schema {name}.schema.json in {schema_dir}")
            continue
        seen.add(name)
        with open(os.path.join(output_dir, f)) as fh:
            doc = json.load(fh)
        for e in schemas[name].iter_errors(doc):
            path = "/".join(str(p) for p in e.absolute_path) or "(top)"
            problems.append(f"{f}: at {path}: {e.message}")
    for name in sorted(set(schemas) - seen):
        problems.append(f"{name}.schema.json: no real output was validated against it")
    for p in problems:
        print(p)
    print(f"validated {len(os.listdir(output_dir))} outputs against {len(schemas)} schemas")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
