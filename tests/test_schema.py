"""schema.json: valid against Pulumi's own metaschema, in step with the Python surface, and
rendered into an up-to-date docs/reference.md.

The drift tests read the Python side by introspection (signatures, annotations, getters,
settings), so adding, renaming or retyping anything on either side without the other fails.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pulumi_hostup
import pytest
from packaging.requirements import Requirement

import hostup_pulumi as hostup
from hostup_pulumi import lifecycle, native, resources, settings
from hostup_pulumi._validation import MAX_COMMAND_LENGTH

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "schema.json"
REFERENCE_PATH = REPO / "docs" / "reference.md"
GEN_REFERENCE = REPO / "tools" / "gen_reference.py"
PKG_MODULE = "github.com/pulumi/pulumi/pkg/v3"
ANY = {"$ref": "pulumi.json#/Any"}


def _load_gen_reference() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", GEN_REFERENCE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_reference = _load_gen_reference()
camel_to_snake = gen_reference.camel_to_snake


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# -- Pulumi's metaschema ------------------------------------------------------------------


def _pulumi_version() -> str:
    text = (REPO / "tools" / "install-pulumi").read_text(encoding="utf-8")
    match = re.search(r"^PULUMI_VERSION=(\S+)$", text, re.MULTILINE)
    assert match, "tools/install-pulumi has no PULUMI_VERSION= line"
    return match.group(1)


def _gomodcache() -> list[Path]:
    candidates = []
    if os.environ.get("GOMODCACHE"):
        candidates.append(Path(os.environ["GOMODCACHE"]))
    try:
        out = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
        if out:
            candidates.append(Path(out))
    except (OSError, subprocess.SubprocessError):
        pass
    candidates.append(Path.home() / "go" / "pkg" / "mod")
    return candidates


def _metaschema_path(tmp_dir: Path) -> Path:
    """codegen/schema/pulumi.json of the pinned pkg/v3 module: from Go's module cache, else
    fetched with `go mod download`. Fails (never skips): without it nothing is checked."""
    module = f"{PKG_MODULE}@v{_pulumi_version()}"
    relative = Path(module) / "codegen" / "schema" / "pulumi.json"
    for cache in _gomodcache():
        if (cache / relative).is_file():
            return cache / relative
    try:
        result = subprocess.run(
            ["go", "mod", "download", "-json", module],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_dir,  # outside any go.mod
        )
        path = Path(json.loads(result.stdout)["Dir"]) / "codegen" / "schema" / "pulumi.json"
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        pytest.fail(f"cannot find or download Pulumi's metaschema ({module}): {exc!r}")
    if not path.is_file():
        pytest.fail(f"`go mod download {module}` did not provide {relative}: {result.stderr}")
    return path


@pytest.fixture(scope="module")
def metaschema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    text = _metaschema_path(tmp_path_factory.mktemp("gomod")).read_text(encoding="utf-8")
    # The version patterns use ECMA-262 named groups, (?<major>...), which Python's re spells
    # (?P<major>...); lookbehinds, (?<= and (?<!, are left alone.
    return json.loads(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", text))


def _validator(metaschema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(metaschema)
    assert cls is jsonschema.Draft202012Validator  # what the metaschema declares
    cls.check_schema(metaschema)
    return cls(metaschema, format_checker=cls.FORMAT_CHECKER)


def test_schema_is_valid_against_pulumi_metaschema(
    schema: dict[str, Any], metaschema: dict[str, Any]
) -> None:
    errors = sorted(_validator(metaschema).iter_errors(schema), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors)


def test_python_language_section_is_valid(
    schema: dict[str, Any], metaschema: dict[str, Any]
) -> None:
    # The metaschema types `language` only as an object; check the python part in depth.
    spec = {"$ref": "#/$defs/pythonLanguageSpec", "$defs": metaschema["$defs"]}
    jsonschema.Draft202012Validator(spec).validate(schema["language"]["python"])


_RESOURCE = ("resources", "hostup:index:AgentCommand")
_FUNCTION = ("functions", "hostup:index:getVpsAgentAvailability")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ((*_RESOURCE, "properties", "pid", "type"), "int"),
        ((*_FUNCTION, "inputs", "properties", "vpsId", "type"), "text"),
        ((*_RESOURCE, "requiredInputs"), "vpsId"),
        (("config", "variables", "apiKey", "secret"), "yes"),
        (("name",), "hostup pulumi"),
        (("version",), "1.0"),
    ],
)
def test_metaschema_catches_mistakes(
    schema: dict[str, Any], metaschema: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    # Guards the test above against passing vacuously (a metaschema that checks nothing).
    broken = json.loads(json.dumps(schema))
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(_validator(metaschema).iter_errors(broken))


# -- package facts -------------------------------------------------------------------------


def test_package_facts_match_the_distribution(schema: dict[str, Any]) -> None:
    meta = importlib.metadata.metadata("hostup-pulumi")
    assert schema["name"] == "hostup"
    assert schema["version"] == hostup.__version__ == meta["Version"]
    # An SPDX expression (PEP 639) or, from older build backends, the License field.
    assert schema["license"] == (meta["License-Expression"] or meta["License"])
    keywords = ",".join(meta.get_all("Keywords") or []).split(",")
    assert schema["keywords"] == [word.strip() for word in keywords if word.strip()]
    assert schema["homepage"].startswith("https://")


def test_python_section_names_the_generated_package_and_hostup_pulumi_requires_it(
    schema: dict[str, Any],
) -> None:
    python = schema["language"]["python"]
    assert python["packageName"] == pulumi_hostup.__name__ != hostup.__name__
    sdk = importlib.metadata.metadata(pulumi_hostup.__name__)
    assert sdk["Version"] == schema["version"]
    sdk_requires = {Requirement(text).name: Requirement(text).specifier for text in
                    importlib.metadata.requires(pulumi_hostup.__name__) or []}  # fmt: skip
    for name, spec in python["requires"].items():
        assert sdk_requires[name] == Requirement(name + spec).specifier
    runtime = {
        Requirement(text).name: Requirement(text).specifier
        for text in importlib.metadata.requires("hostup-pulumi") or []
        if "extra ==" not in text
    }
    # One install brings both: hostup-pulumi requires the SDK of the same schema version.
    assert runtime["pulumi-hostup"] == Requirement(f"x=={schema['version']}").specifier


# -- reading the Python side ---------------------------------------------------------------

_PY_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the value type, whether None is allowed) of an annotation, without pulumi's
    Input / Output / Awaitable wrappers."""
    if annotation is Any:
        return Any, True
    origin = typing.get_origin(annotation)
    if origin is pulumi.Output:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        # pulumi.Input[T] is Union[T, Awaitable[T], ForwardRef('Output[T]')].
        kept = [
            arg
            for arg in args
            if arg is not type(None)
            and typing.get_origin(arg) not in (collections.abc.Awaitable, pulumi.Output)
            and not isinstance(arg, typing.ForwardRef)
        ]
        assert len(kept) == 1, f"cannot map {annotation} to one schema type"
        inner, optional = _unwrap(kept[0])
        return inner, optional or type(None) in args
    return annotation, False


def _schema_type(value_type: Any) -> dict[str, Any]:
    """The schema type spec for a Python value type (as Pulumi's Python codegen maps them)."""
    if value_type is Any:
        return dict(ANY)
    if value_type in _PY_TYPES:
        return dict(_PY_TYPES[value_type])
    origin, args = typing.get_origin(value_type), typing.get_args(value_type)
    if origin in (list, collections.abc.Sequence):
        return {"type": "array", "items": _schema_type(args[0])}
    if origin in (dict, collections.abc.Mapping):
        assert args[0] is str
        return {"type": "object", "additionalProperties": _schema_type(args[1])}
    raise AssertionError(f"no schema type for {value_type!r}")


def _type_of(spec: dict[str, Any]) -> dict[str, Any]:
    keys = ("type", "items", "additionalProperties", "$ref")
    return {key: spec[key] for key in keys if key in spec}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


# Python-side options, not Pulumi inputs.
_PYTHON_OPTIONS = ("self", "resource_name", "opts", "secret_output")


def _parameters(fn: Any, skip: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    """Parameters that are Pulumi inputs: not self/name/opts/secret_output."""
    return {
        name: param
        for name, param in inspect.signature(fn, eval_str=True).parameters.items()
        if name not in (*_PYTHON_OPTIONS, *skip)
    }


# Defaults that __init__ fills in when the argument is None.
_RUNTIME_DEFAULTS = {("AgentExecResult", "timeout"): resources.DEFAULT_RESULT_TIMEOUT}


def test_names_convert_both_ways(schema: dict[str, Any]) -> None:
    names: set[str] = set(schema["config"]["variables"])
    for spec in [*schema["functions"].values()]:
        names |= set(spec["inputs"]["properties"]) | set(spec["outputs"]["properties"])
    for spec in schema["resources"].values():
        names |= set(spec["inputProperties"]) | set(spec["properties"])
    for name in names:
        assert _camel(camel_to_snake(name)) == name


# -- config --------------------------------------------------------------------------------


def _settings_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(hostup.Settings)}


def test_config_variables_match_settings(schema: dict[str, Any]) -> None:
    variables = schema["config"]["variables"]
    assert set(variables) == {key.split(":", 1)[1] for key in settings.CONFIG_KEYS}
    fields = _settings_fields()
    hints = inspect.get_annotations(hostup.Settings, eval_str=True)
    defaults = hostup.Settings.resolve(env={}, require_credentials=False)
    for name, spec in variables.items():
        attr = camel_to_snake(name)
        assert attr in fields, f"config {name} has no Settings.{attr}"
        value_type, _ = _unwrap(hints[attr])
        assert _type_of(spec) == _schema_type(value_type), name
        # Credentials are the fields kept out of repr(); they must be secret config.
        assert spec.get("secret", False) is (not fields[attr].repr), name
        assert spec.get("default") == getattr(defaults, attr), name


def test_config_environment_variables_match_settings(schema: dict[str, Any]) -> None:
    env_vars = {value for key, value in vars(settings).items() if key.startswith("ENV_")}
    defaults = hostup.Settings.resolve(env={}, require_credentials=False)
    samples = {"string": "sample_value_1", "integer": "7", "number": "7"}
    for name, spec in schema["config"]["variables"].items():
        attr = camel_to_snake(name)
        sample = "http://127.0.0.1:9" if name == "baseUrl" else samples[spec["type"]]
        declared = spec.get("defaultInfo", {}).get("environment", [])
        assert set(declared) <= env_vars, name
        for var in env_vars:
            try:
                resolved = hostup.Settings.resolve(env={var: sample}, require_credentials=False)
            except hostup.ConfigurationError:  # the variable feeds a setting of another type
                assert var not in declared, f"{var} does not read into {name}"
                continue
            reads = getattr(resolved, attr) != getattr(defaults, attr)
            assert reads is (var in declared), f"{var} and config {name}: schema says otherwise"


# -- functions -----------------------------------------------------------------------------


def _getters(cls: type) -> dict[str, tuple[str, Any]]:
    """Schema name -> (Python name, return annotation) of an output type's pulumi getters."""
    out = {}
    for attr, member in vars(cls).items():
        if isinstance(member, property) and not attr.startswith("_"):
            pulumi_name = getattr(member.fget, "_pulumi_name", None) or attr
            annotation = inspect.signature(member.fget, eval_str=True).return_annotation
            out[pulumi_name] = (attr, annotation)
    return out


def test_function_matches_python(schema: dict[str, Any]) -> None:
    spec = schema["functions"]["hostup:index:getVpsAgentAvailability"]
    plain = hostup.get_vps_agent_availability
    output = hostup.get_vps_agent_availability_output
    params = _parameters(plain, skip=())
    assert _parameters(output, skip=()).keys() == params.keys()
    inputs = spec["inputs"]
    assert list(inputs["properties"]) == [_camel(name) for name in params]
    required = [_camel(n) for n, p in params.items() if p.default is inspect.Parameter.empty]
    assert inputs["required"] == required
    for name, param in params.items():
        value_type, _ = _unwrap(param.annotation)
        assert _type_of(inputs["properties"][_camel(name)]) == _schema_type(value_type)

    getters = _getters(hostup.GetVpsAgentAvailabilityResult)
    outputs = spec["outputs"]
    assert set(outputs["properties"]) == set(getters)
    required_outputs = []
    for name, (attr, annotation) in getters.items():
        assert camel_to_snake(name) == attr
        value_type, optional = _unwrap(annotation)
        assert _type_of(outputs["properties"][name]) == _schema_type(value_type), name
        if not optional:
            required_outputs.append(name)
    assert sorted(outputs["required"]) == sorted(required_outputs)


def test_every_public_function_and_resource_is_in_the_schema(schema: dict[str, Any]) -> None:
    functions = {camel_to_snake(token.rsplit(":", 1)[1]) for token in schema["functions"]}
    public_functions = {
        name
        for name in hostup.__all__
        if name.startswith(("get_", "require_")) and not name.endswith("_output")
    }
    assert public_functions == functions
    native_functions = {n for n in native.__all__ if n[0].islower() and not n.endswith("_output")}
    assert native_functions == functions
    assert set(schema["functions"]) == set(lifecycle.FUNCTIONS)
    assert set(schema["resources"]) == set(lifecycle.RESOURCES)
    resource_classes = {
        name
        for name in hostup.__all__
        if isinstance(getattr(hostup, name), type)
        and issubclass(getattr(hostup, name), pulumi.Resource)
        and not issubclass(getattr(hostup, name), pulumi.ProviderResource)
    }
    assert {token.rsplit(":", 1)[1] for token in schema["resources"]} == resource_classes


# -- resources -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["AgentCommand", "AgentExecResult", "Provider",
                                  "get_vps_agent_availability", "require_agent_available",
                                  "require_agent_available_output"])  # fmt: skip
def test_native_names_are_the_generated_sdks(name: str) -> None:
    # No plugin-backed class or function is written by hand: they are pulumi_hostup's.
    assert getattr(native, name) is getattr(pulumi_hostup, name)
    assert getattr(pulumi_hostup, name).__module__.startswith("pulumi_hostup.")


@pytest.mark.parametrize("class_name", ["AgentCommand", "AgentExecResult"])
def test_resource_inputs_match_python(schema: dict[str, Any], class_name: str) -> None:
    module = hostup
    spec = schema["resources"][f"hostup:index:{class_name}"]
    cls = getattr(module, class_name)
    params = _parameters(cls.__init__, skip=())
    assert list(spec["inputProperties"]) == [_camel(name) for name in params]
    required = [_camel(n) for n, p in params.items() if p.default is inspect.Parameter.empty]
    assert spec["requiredInputs"] == required
    for name, param in params.items():
        prop = spec["inputProperties"][_camel(name)]
        value_type, _ = _unwrap(param.annotation)
        assert _type_of(prop) == _schema_type(value_type), name
        default = _RUNTIME_DEFAULTS.get((class_name, name), param.default)
        if default is inspect.Parameter.empty or default is None:
            assert "default" not in prop, name
        else:
            assert prop["default"] == default, name
    rules = lifecycle.RESOURCES[f"hostup:index:{class_name}"]
    replaced = {_camel(spec.name) for spec in rules.inputs if spec.replaces}
    flagged = {
        name for name, prop in spec["inputProperties"].items() if prop.get("willReplaceOnChanges")
    }
    assert flagged == replaced


@pytest.mark.parametrize("class_name", ["AgentCommand", "AgentExecResult"])
def test_resource_outputs_match_python(schema: dict[str, Any], class_name: str) -> None:
    spec = schema["resources"][f"hostup:index:{class_name}"]
    cls = getattr(hostup, class_name)
    annotations = inspect.get_annotations(cls, eval_str=True)
    assert sorted(spec["properties"]) == sorted(_camel(name) for name in annotations)
    required = []
    for attr, annotation in annotations.items():
        name = _camel(attr)
        value_type, optional = _unwrap(annotation)
        assert _type_of(spec["properties"][name]) == _schema_type(value_type), name
        if not optional:
            required.append(name)
        # An output repeats its input's default and replace behaviour.
        if name in spec["inputProperties"]:
            for key in ("default", "willReplaceOnChanges"):
                assert spec["properties"][name].get(key) == spec["inputProperties"][name].get(key)
    assert sorted(spec["required"]) == sorted(required)
    secret_outputs = lifecycle.RESOURCES[f"hostup:index:{class_name}"].secret_outputs
    secret = [camel_to_snake(n) for n, prop in spec["properties"].items() if prop.get("secret")]
    assert sorted(secret) == sorted(secret_outputs)
    # The description names the type the engine records for this dynamic resource.
    assert f"`pulumi-python:{cls._resource_type_name}`" in spec["description"]
    assert f"`hostup_pulumi.native.{class_name}`" in spec["description"]


def test_provider_inputs_are_the_config_keys(schema: dict[str, Any]) -> None:
    inputs = schema["provider"]["inputProperties"]
    variables = schema["config"]["variables"]
    assert list(inputs) == list(variables)
    for name, spec in inputs.items():
        assert {k: v for k, v in spec.items() if k != "description"} == {
            k: v for k, v in variables[name].items() if k != "description"
        }, name
    assert inputs["apiKey"]["secret"] is True
    assert inputs["sessionCookie"]["secret"] is True


def test_require_function_matches_python(schema: dict[str, Any]) -> None:
    spec = schema["functions"]["hostup:index:requireAgentAvailable"]
    get = schema["functions"]["hostup:index:getVpsAgentAvailability"]
    assert spec["outputs"] == get["outputs"]
    for fn in (hostup.require_agent_available, hostup.require_agent_available_output,
               native.require_agent_available, native.require_agent_available_output):  # fmt: skip
        params = _parameters(fn, skip=())
        assert [_camel(name) for name in params] == list(spec["inputs"]["properties"]), fn
    assert spec["inputs"]["required"] == ["vpsId"]


def test_stdout_and_stderr_are_secret(schema: dict[str, Any]) -> None:
    props = schema["resources"]["hostup:index:AgentExecResult"]["properties"]
    assert props["stdout"]["secret"] is True
    assert props["stderr"]["secret"] is True


def test_documented_limits_match_the_code(schema: dict[str, Any]) -> None:
    command = schema["resources"]["hostup:index:AgentCommand"]["inputProperties"]["command"]
    assert f"at most {MAX_COMMAND_LENGTH} characters" in command["description"]
    timeout = schema["resources"]["hostup:index:AgentExecResult"]["inputProperties"]["timeout"]
    assert f"at most {lifecycle.MAX_RESULT_TIMEOUT:g}" in timeout["description"]


# -- the generated reference ---------------------------------------------------------------


def test_reference_is_up_to_date(schema: dict[str, Any]) -> None:
    assert REFERENCE_PATH.read_text(encoding="utf-8") == gen_reference.render(schema), (
        "docs/reference.md is stale: run `python tools/gen_reference.py`"
    )


def test_reference_covers_every_name(schema: dict[str, Any]) -> None:
    text = REFERENCE_PATH.read_text(encoding="utf-8")
    for token, spec in [*schema["functions"].items(), *schema["resources"].items()]:
        assert f"`{token}`" in text
        props = spec.get("properties", {}) | spec.get("inputProperties", {})
        props |= spec.get("inputs", {}).get("properties", {})
        props |= spec.get("outputs", {}).get("properties", {})
        for name in props:
            assert f"`{name}` | `{camel_to_snake(name)}`" in text
    for name in schema["config"]["variables"]:
        assert f"`hostup:{name}`" in text


def test_gen_reference_check_flags_a_stale_file(tmp_path: Path) -> None:
    output = tmp_path / "reference.md"
    command = [sys.executable, str(GEN_REFERENCE), "--output", str(output)]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "gen_reference.py" in stale.stderr
    assert subprocess.run(command, check=False).returncode == 0
    assert subprocess.run([*command, "--check"], check=False).returncode == 0
    assert output.read_text(encoding="utf-8") == REFERENCE_PATH.read_text(encoding="utf-8")
