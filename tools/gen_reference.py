"""Generate docs/reference.md, the API reference, from schema.json.

    python tools/gen_reference.py           # (re)write docs/reference.md
    python tools/gen_reference.py --check   # exit 1 when docs/reference.md is stale

schema.json is the one description of the package's surface (tests keep it in step with the
Python code); this script only renders it, so the reference cannot say anything the schema
does not. Standard library only, so it runs without the package's dependencies.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schema.json"
OUTPUT = REPO / "docs" / "reference.md"
ANY_REF = "pulumi.json#/Any"

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def camel_to_snake(name: str) -> str:
    """``vmRunning`` -> ``vm_running``: schema names to Python names (as Pulumi's SDKs map them)."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def type_name(spec: Mapping[str, Any]) -> str:
    """A short, readable name for a schema type reference."""
    if spec.get("$ref") == ANY_REF:
        return "any"
    if "$ref" in spec:
        return str(spec["$ref"]).rsplit("/", 1)[-1]
    kind = spec.get("type")
    if kind == "array":
        return f"array<{type_name(spec.get('items', {}))}>"
    if kind == "object":
        # A map's values default to string when additionalProperties is absent.
        return f"map<{type_name(spec.get('additionalProperties', {'type': 'string'}))}>"
    return str(kind)


def _cell(text: str) -> str:
    # Table cells are one line: keep paragraph breaks visible, escape the column separator.
    return text.strip().replace("\n\n", "<br><br>").replace("\n", " ").replace("|", "\\|")


def _value(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _member(token: str) -> str:
    return token.rsplit(":", 1)[-1]


def _python_args(props: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    args = []
    for name, spec in props.items():
        arg = camel_to_snake(name)
        if name not in required:
            arg += "=" + repr(spec.get("default"))
        args.append(arg)
    return args


def _config(schema: Mapping[str, Any]) -> list[str]:
    variables = schema.get("config", {}).get("variables", {})
    rows = []
    for name, spec in variables.items():
        env = spec.get("defaultInfo", {}).get("environment", [])
        rows.append([
            f"`{schema['name']}:{name}`",
            type_name(spec),
            "yes" if spec.get("secret") else "",
            _value(spec["default"]) if "default" in spec else "",
            ", ".join(f"`{var}`" for var in env),
            _cell(spec.get("description", "")),
        ])  # fmt: skip
    return [
        "## Configuration",
        "",
        f"Set with `pulumi config set {schema['name']}:<key> <value>` (`--secret` for secrets). "
        "An explicit argument wins over stack config, which wins over the environment "
        "variable.",
        "",
        *_table(["Key", "Type", "Secret", "Default", "Environment", "Description"], rows),
    ]


def _provider(schema: Mapping[str, Any]) -> list[str]:
    spec = schema.get("provider")
    if not spec:
        return []
    inputs = spec.get("inputProperties", {})
    args = ", ".join(["resource_name", "opts=None", *_python_args(inputs, [])])
    return [
        "## Provider",
        "",
        f"Token `pulumi:providers:{schema['name']}` (the native plugin). In YAML: "
        f"`type: pulumi:providers:{schema['name']}`; pass it as a resource's or an invoke's "
        "`provider` option.",
        "",
        "```python",
        f"hostup.Provider({args})",
        "```",
        "",
        spec.get("description", "").strip(),
        "",
        "#### Inputs",
        "",
        *_table(_INPUT_HEADER, _input_rows(inputs, [])),
    ]


def _input_rows(props: Mapping[str, Any], required: Sequence[str]) -> list[list[str]]:
    return [
        [
            f"`{name}`",
            f"`{camel_to_snake(name)}`",
            type_name(spec),
            "yes" if name in required else "",
            _value(spec["default"]) if "default" in spec else "",
            "replace" if spec.get("willReplaceOnChanges") or spec.get("replaceOnChanges") else "",
            _cell(spec.get("description", "")),
        ]
        for name, spec in props.items()
    ]


def _output_rows(props: Mapping[str, Any], required: Sequence[str]) -> list[list[str]]:
    return [
        [
            f"`{name}`",
            f"`{camel_to_snake(name)}`",
            type_name(spec),
            "yes" if name in required else "",
            "yes" if spec.get("secret") else "",
            _cell(spec.get("description", "")),
        ]
        for name, spec in props.items()
    ]


_INPUT_HEADER = ["Name", "Python", "Type", "Required", "Default", "On change", "Description"]
_OUTPUT_HEADER = ["Name", "Python", "Type", "Always set", "Secret", "Description"]


def _functions(schema: Mapping[str, Any]) -> list[str]:
    lines = ["## Functions", ""]
    for token, spec in schema.get("functions", {}).items():
        python = camel_to_snake(_member(token))
        inputs = spec.get("inputs", {})
        outputs = spec.get("outputs", {})
        args = ", ".join([*_python_args(inputs.get("properties", {}), inputs.get("required", [])),
                          "opts=None"])  # fmt: skip
        lines += [
            f"### {_member(token)}",
            "",
            f"Token `{token}`.",
            "",
            "```python",
            f"hostup.{python}({args})          # the result",
            f"hostup.{python}_output({args})   # a pulumi.Output of the result",
            "```",
            "",
            spec.get("description", "").strip(),
            "",
            "#### Inputs",
            "",
            *_table(
                _INPUT_HEADER,
                _input_rows(inputs.get("properties", {}), inputs.get("required", [])),
            ),
            "#### Outputs",
            "",
            *([outputs["description"].strip(), ""] if outputs.get("description") else []),
            *_table(
                _OUTPUT_HEADER,
                _output_rows(outputs.get("properties", {}), outputs.get("required", [])),
            ),
        ]
    return lines


def _resources(schema: Mapping[str, Any]) -> list[str]:
    lines = ["## Resources", ""]
    for token, spec in schema.get("resources", {}).items():
        inputs = spec.get("inputProperties", {})
        required_inputs = spec.get("requiredInputs", [])
        args = ", ".join(["resource_name", *_python_args(inputs, required_inputs), "opts=None"])
        lines += [
            f"### {_member(token)}",
            "",
            f"Token `{token}`.",
            "",
            "```python",
            f"hostup.{_member(token)}({args})",
            "```",
            "",
            spec.get("description", "").strip(),
            "",
            "#### Inputs",
            "",
            *_table(_INPUT_HEADER, _input_rows(inputs, required_inputs)),
            "#### Outputs",
            "",
            *_table(
                _OUTPUT_HEADER,
                _output_rows(spec.get("properties", {}), spec.get("required", [])),
            ),
        ]
    return lines


def render(schema: Mapping[str, Any]) -> str:
    """The Markdown reference for ``schema`` (a Pulumi package schema)."""
    python = schema.get("language", {}).get("python", {})
    module = python.get("packageName", schema["name"])
    nodejs = schema.get("language", {}).get("nodejs", {}).get("packageName", schema["name"])
    go = schema.get("language", {}).get("go", {}).get("importBasePath", schema["name"])
    lines = [
        f"# {schema.get('displayName', schema['name'])} API reference",
        "",
        "<!-- Generated from schema.json by tools/gen_reference.py: do not edit by hand. -->",
        "",
        schema.get("description", "").strip(),
        "",
        f"Package `{schema['name']}` version {schema['version']}. "
        f"SDKs generated from this schema: TypeScript `{nodejs}`, Go `{go}`, Python "
        f"`{module}` (also as `hostup_pulumi.native`, beside the zero-install dynamic classes of "
        "`import hostup_pulumi as hostup`). Names are shown as the schema spells them "
        "(camelCase: stack outputs, config keys, TypeScript) and as the Python SDK spells them "
        "(snake_case). Defaults are shown as JSON.",
        "",
        *_config(schema),
        *_provider(schema),
        *_functions(schema),
        *_resources(schema),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the reference; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    parser.add_argument("--schema", type=Path, default=SCHEMA, help="default: schema.json")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: docs/reference.md")
    args = parser.parse_args(argv)
    text = render(json.loads(args.schema.read_text(encoding="utf-8")))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{args.output} is stale: run `python tools/gen_reference.py`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
