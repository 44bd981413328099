"""The package's layers: import-linter's contract holds, and catches an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CLI_SHARE = 0.15  # the command line's most of the package's lines


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """lint-imports with the repository's contract, on the package under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([LINT_IMPORTS, ROOT / "pyproject.toml", "--no-cache", "--no-logo"],
                          capture_output=True, text=True, env=env, cwd=src)  # fmt: skip


def test_the_layer_contract_holds():
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout
    assert "2 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """core is the bottom layer: a core module importing the CLI fails the check, naming it."""
    shutil.copytree(ROOT / "src" / "posecli", tmp_path / "posecli")
    text = tmp_path / "posecli" / "core" / "text.py"
    text.write_text(text.read_text() + "\nfrom posecli.cli import common  # noqa: E402\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "posecli.core is not allowed to import posecli.cli" in done.stdout


def test_a_cycle_breaks_the_contract(tmp_path):
    """Two modules of one package importing each other fail the check, however low."""
    shutil.copytree(ROOT / "src" / "posecli", tmp_path / "posecli")
    geometry = tmp_path / "posecli" / "core" / "geometry.py"
    geometry.write_text(geometry.read_text() + "\nfrom posecli.core import results  # noqa\n")
    results = tmp_path / "posecli" / "core" / "results.py"
    results.write_text(results.read_text() + "\nfrom posecli.core import geometry  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1 and "No cycles are allowed in posecli.core" in done.stdout


def lines(folder: Path) -> int:
    """Lines of the Python files under `folder`."""
    return sum(len(path.read_text().splitlines()) for path in folder.rglob("*.py"))


def test_the_command_line_is_a_thin_layer():
    """The CLI parses, checks and reports; the library runs."""
    package = ROOT / "src" / "posecli"
    assert lines(package / "cli") < CLI_SHARE * lines(package)
