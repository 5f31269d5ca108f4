"""Installing the right fluxqueue (issue 15, item 2).

The name on the public package index belongs to an unrelated project (0.3.x). Our version
carries a PEP 440 epoch so that no requirement of ours can resolve to it, and the CLI says
which distribution was imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import fluxqueue

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = str(Path(fluxqueue.__file__).resolve().parent)
NAMESAKE = "0.3.2"


def project_field(pyproject: Path, pattern: str) -> str:
    found = re.search(pattern, pyproject.read_text(), re.MULTILINE)
    assert found is not None, pattern
    return found.group(1)


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fluxqueue.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_version_and_the_plugin_requirement_exclude_the_namesake() -> None:
    ours = project_field(ROOT / "pyproject.toml", r'^version = "([^"]+)"')
    assert ours == fluxqueue.__version__
    requirement = Requirement(
        project_field(
            ROOT / "plugins" / "fluxqueue-msgpack" / "pyproject.toml", r'"(fluxqueue>=[^"]+)"'
        )
    )
    assert requirement.specifier.contains(Version(ours))
    assert not requirement.specifier.contains(Version(NAMESAKE))
    assert not requirement.specifier.contains(Version("99.0"))  # nor any later namesake
    assert Version(ours) > Version("999.0")  # and an upgrade never goes "back" to it


def fake_wheel(directory: Path, version: str) -> None:
    """A minimal, installable wheel named fluxqueue (stands in for the namesake)."""
    name = f"fluxqueue-{version}"
    meta = f"{name}.dist-info"
    with zipfile.ZipFile(directory / f"{name}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(
            f"{meta}/METADATA", f"Metadata-Version: 2.1\nName: fluxqueue\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{meta}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{meta}/RECORD", "")


@pytest.mark.parametrize(
    ("requirement", "resolves_to_namesake"),
    [("fluxqueue>=0.1", True), ("fluxqueue>=1!0.2", False)],
)
def test_pip_never_resolves_our_requirement_to_the_namesake(
    tmp_path: Path, requirement: str, resolves_to_namesake: bool
) -> None:
    """pip itself, offline, with only the namesake on its index (a local directory)."""
    fake_wheel(tmp_path, NAMESAKE)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--ignore-installed",
         "--disable-pip-version-check", "--find-links", str(tmp_path), requirement],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if resolves_to_namesake:  # the old requirement: the namesake would be installed
        assert done.returncode == 0, done.stderr
        assert f"fluxqueue-{NAMESAKE}" in done.stdout
    else:
        assert done.returncode != 0
        assert f"No matching distribution found for {requirement}" in done.stderr
        assert NAMESAKE in done.stderr  # pip saw it and refused it


def test_version_says_which_fluxqueue_is_imported() -> None:
    lines = cli("--version").splitlines()
    assert lines[0] == f"fluxqueue, version {fluxqueue.__version__}"
    assert lines[1].startswith(f"fluxqueue {fluxqueue.__version__} from {PACKAGE_DIR} (")


def test_plugins_says_which_fluxqueue_is_imported() -> None:
    last = cli("plugins").splitlines()[-1]
    assert last.startswith(f"fluxqueue {fluxqueue.__version__} from {PACKAGE_DIR} (")
    entries = json.loads(cli("plugins", "--json"))
    builtins = next(e for e in entries if e["distribution"] == "fluxqueue")
    assert builtins["version"] == fluxqueue.__version__
    assert builtins["location"] == PACKAGE_DIR
    assert "installed_from" in builtins


def test_the_description_of_each_kind_of_install() -> None:
    from fluxqueue.cli.about import Installation

    def describe(**fields: object) -> str:
        base: dict[str, object] = {
            "version": "1!0.2.0", "package_dir": "/p/fluxqueue", "distribution_version": "1!0.2.0",
            "installed_from": None, "editable": False, "installer": None, "metadata_dir": "/p",
        }  # fmt: skip
        return Installation(**{**base, **fields}).describe()  # type: ignore[arg-type]

    assert describe(installed_from="file:///p", editable=True) == (
        "fluxqueue 1!0.2.0 from /p/fluxqueue (editable install of file:///p)"
    )
    assert describe(installed_from="git+https://h/o/fluxqueue.git@abc").endswith(
        "(installed from git+https://h/o/fluxqueue.git@abc)"
    )
    assert describe(installer="pip").endswith("(installed from a package index by pip)")
    assert describe(distribution_version=None).endswith("(not installed as a distribution)")
    assert describe(distribution_version="0.3.2", installer="pip").endswith(
        "; but the installed distribution is 0.3.2)"
    )
