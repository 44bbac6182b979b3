"""The import contracts in pyproject.toml (issue 13) hold for the tree, and would fail on each
kind of back-and-forth import the apps had before: the check is planted in a copy of the tree
and import-linter must name the contract it breaks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "registry", "governance", "cards", "config")
LINT = Path(sys.executable).with_name("lint-imports")

CROSS_APP = "The apps stand in layers"
EDGES = "No app imports another app's edges"
KERNEL = "The kernel (core) imports no app"
INSIDE = "Inside each app"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_contract(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
    assert "BROKEN" not in result.stdout


# (module that gains the import, the import, the contract it breaks): the imports issue 13
# listed in its Why, one of each kind
PLANTED = [
    ("registry/services/versions.py", "from governance import policies", CROSS_APP),
    ("registry/views.py", "from cards.models import ModelCard", CROSS_APP),
    ("governance/policies.py", "from cards import content", CROSS_APP),
    ("core/permissions.py", "from cards.models import ModelCard", KERNEL),
    ("core/api.py", "from governance import refusals", KERNEL),
    ("cards/api/views.py", "from registry.api.views import RegistryView", EDGES),
    ("governance/admin.py", "from registry.admin import RegisteredModelAdmin", EDGES),
    ("governance/views.py", "from registry.views import page", EDGES),
    ("registry/models/catalog.py", "from registry import selectors", INSIDE),
    ("governance/promotions.py", "from governance import views", INSIDE),
]


@pytest.mark.parametrize(("module", "line", "contract"), PLANTED, ids=[p[1] for p in PLANTED])
def test_a_planted_import_breaks_its_contract(tree, module, line, contract):
    path = tree / module
    original = path.read_text()
    path.write_text(f"{line}  # noqa\n{original}")
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    # the headings of the "Broken contracts" section name what broke (the summary above it
    # names every contract)
    _, _, broken = result.stdout.partition("Broken contracts")
    assert contract in broken, result.stdout
