"""Every skip says why in words: a reader of `pytest -rs` on a shared machine learns what the
test needs, never a bare condition such as `connection.vendor == 'postgresql'`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import POSTGRES_SKIP_REASON

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _name(node: ast.expr) -> str:
    return ast.unparse(node)


def test_every_skip_in_the_suite_gives_a_reason():
    missing = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            keywords = {k.arg for k in node.keywords}
            if name.endswith(("mark.skipif", "mark.skip")) and "reason" not in keywords:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name} without reason=")
            if name == "pytest.skip" and not node.args and "reason" not in keywords:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} pytest.skip() bare")
    assert not missing, missing


def test_postgresql_only_tests_skip_on_sqlite_saying_what_they_need(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["MODELGATE_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-rs",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/governance/test_database_role_check.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout
    assert "SKIPPED [3] tests/governance/test_database_role_check.py" in result.stdout
    assert POSTGRES_SKIP_REASON in result.stdout
    assert "condition:" not in result.stdout
