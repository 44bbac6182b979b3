"""The README's two commands are the ones CI and users run; keep them from drifting."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r'^TEST_COMMAND="(.+)"$', ci, re.M).group(1)
    assert command in (ROOT / "README.md").read_text()


def test_readme_first_command_serves_the_demo():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n```", readme, re.S)
    assert blocks[0].endswith("manage.py demo")
    assert "pytest" in blocks[1]
