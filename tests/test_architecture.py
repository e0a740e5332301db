"""The code's shape: the layer order (import-linter's contracts in pyproject.toml), framework code
only in the framework packages, the framework list spelled once, and ruff's checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = ("lenet_spec", "lenet_train", "lenet_torch", "lenet_paddle", "export", "parity", "benchmarks")
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: pip install -e '.[test]'")
    return str(path)


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the packages under `root`, with the contracts of `root`/pyproject.toml."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run([tool("lint-imports"), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def source_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in listed if f.split("/")[0] in PACKAGES]


def test_the_import_contracts_hold():
    """benchmarks > parity > export > lenet_torch | lenet_paddle > lenet_train > lenet_spec, the two
    framework packages independent, torch and paddle imported only inside their packages."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    "file, line, broken",
    [
        ("lenet_spec/cli.py", "def _upward():\n    from parity import check  # noqa\n", "lenet_spec.cli -> parity.check"),  # upward, and lazy
        ("lenet_torch/bridge.py", "def _sideways():\n    import lenet_paddle.bridge  # noqa\n", "lenet_torch.bridge -> lenet_paddle.bridge"),
        ("export/runtime.py", "def _framework():\n    import torch  # noqa\n", "export.runtime -> torch"),
    ],
    ids=["upward", "sideways", "framework"],
)
def test_an_import_against_the_order_breaks_a_contract(tmp_path, file, line, broken):
    """The contracts can fail: the tree with one import added against them (inside a function,
    which import-linter counts as the interpreter would at the call) is refused, naming it."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.txt", "static"))
    target = tmp_path / file
    target.write_text(target.read_text() + "\n\n" + line)
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert broken in result.stdout, result.stdout[-3000:]


PAIR = re.compile(r"""["']torch["'],\s*["']paddle["']|["']paddle["'],\s*["']torch["']""")
PACKAGE_BY_NAME = re.compile(r"""import_module\(\s*f?["']lenet_\{""")


def test_the_framework_list_is_spelled_once():
    """Every caller loops over lenet_spec.frameworks' registry: no literal pair of framework names
    and no f"lenet_{fw}" import string outside it."""
    found = [
        f"{path.relative_to(ROOT)}:{i}: {text.strip()}"
        for path in source_files()
        if path.relative_to(ROOT).as_posix() != "lenet_spec/frameworks.py"
        for i, text in enumerate(path.read_text().splitlines(), 1)
        if PAIR.search(text) or PACKAGE_BY_NAME.search(text)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("command", [["check", "--output-format", "concise"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_finds_nothing(command):
    """ruff's checks of pyproject.toml (unused and undefined names, the 160-column limit) and its
    formatter's layout, on the whole tree."""
    result = subprocess.run([tool("ruff"), *command, "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-1000:]
