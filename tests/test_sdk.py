"""The SDKs under sdk/ are schema.json's products: Pulumi's codegen (tools/gen-sdk) writes
exactly what is committed, and each SDK names the hostup plugin at the schema's version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SDK = REPO / "sdk"
LANGUAGES = ("nodejs", "go", "python")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((REPO / "schema.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three SDKs as the pinned generator writes them now, from schema.json."""
    out = tmp_path_factory.mktemp("sdk")
    proc = subprocess.run(
        [str(REPO / "tools" / "gen-sdk"), "--into", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"tools/gen-sdk failed:\n{proc.stdout}{proc.stderr}"
    return out


def _committed(lang: str) -> set[str]:
    """sdk/<lang>'s files that git tracks or would track (not ignored build products)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", f"sdk/{lang}"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return {str(Path(p).relative_to(f"sdk/{lang}")) for p in listed if (REPO / p).is_file()}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# Files beside the generated ones that `make sdk` keeps: the TypeScript build's lockfile.
_NOT_GENERATED = {"nodejs": {"package-lock.json"}, "go": set(), "python": set()}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_committed_sdk_is_what_the_generator_writes_from_the_schema(
    generated: Path, lang: str
) -> None:
    fresh = _files(generated / lang)
    committed = _committed(lang) - _NOT_GENERATED[lang]
    missing = sorted(fresh - committed)
    stale = sorted(committed - fresh)
    assert not missing, f"sdk/{lang} lacks generated files {missing}: run `make sdk`"
    assert not stale, f"sdk/{lang} has files the generator no longer writes {stale}: run `make sdk`"
    for name in sorted(fresh):
        ours = (SDK / lang / name).read_bytes()
        assert ours == (generated / lang / name).read_bytes(), (
            f"sdk/{lang}/{name} differs from what schema.json generates: run `make sdk` "
            "(generated files are never edited by hand)"
        )


def test_every_sdk_names_the_hostup_plugin_at_the_schema_version(schema: dict[str, Any]) -> None:
    expected = {"resource": True, "name": schema["name"], "version": schema["version"]}
    package = json.loads((SDK / "nodejs" / "package.json").read_text(encoding="utf-8"))
    assert package["pulumi"] == expected
    assert package["version"] == schema["version"]
    for plugin_json in (SDK / "go" / "hostup" / "pulumi-plugin.json",
                        SDK / "python" / "pulumi_hostup" / "pulumi-plugin.json"):  # fmt: skip
        assert json.loads(plugin_json.read_text(encoding="utf-8")) == expected, plugin_json


def test_sdk_names_stay_out_of_pulumis_own_namespaces(schema: dict[str, Any]) -> None:
    language = schema["language"]
    assert not language["nodejs"]["packageName"].startswith("@pulumi/")
    assert language["python"]["packageName"] == "pulumi_hostup"  # not hostup_pulumi, ours
    assert not language["go"]["importBasePath"].startswith("github.com/pulumi/")
    go_mod = (SDK / "go" / "go.mod").read_text(encoding="utf-8")
    assert f"module {language['go']['importBasePath'].rsplit('/', 1)[0]}\n" in go_mod


def test_the_typescript_package_is_built_and_packed_with_its_package_json() -> None:
    # `make sdk` builds bin/ (what a program loads) and packs it; make test runs it first.
    bin_dir = SDK / "nodejs" / "bin"
    built = json.loads((bin_dir / "package.json").read_text(encoding="utf-8"))
    source = json.loads((SDK / "nodejs" / "package.json").read_text(encoding="utf-8"))
    assert built == source
    assert (bin_dir / "index.js").is_file()
    assert (bin_dir / "index.d.ts").is_file()
    tarballs = list((SDK / "nodejs" / "dist").glob("*.tgz"))
    assert [t.name for t in tarballs] == [
        f"{source['name'].lstrip('@').replace('/', '-')}-{source['version']}.tgz"
    ]
