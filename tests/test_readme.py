"""The README's two commands are the ones CI and users run; keep them from drifting."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.live import Browser, free_port, stylesheets, wait_until_serving
from tests.readme import production

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r'^TEST_COMMAND="(.+)"$', ci, re.M).group(1)
    assert command in (ROOT / "README.md").read_text()


def test_readme_first_command_serves_the_demo():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n *```", readme, re.S)
    assert blocks[0].endswith("manage.py demo")
    assert "pytest" in blocks[1]


def test_production_section_installs_what_workers_need_and_makes_an_administrator():
    """Issue 12: it installed only `.[s3]` (every conversion failed on the worker with "No
    module named 'numpy'") and had no first-administrator step."""
    section = production()
    install = next(c for c in section.commands if c[:2] == ["pip", "install"])
    extras = re.fullmatch(r"\.\[(.+)\]", install[-1]).group(1).split(",")
    assert "convert" in extras and "s3" in extras
    pyproject = (ROOT / "pyproject.toml").read_text()
    convert = re.search(r"^convert = \[(.+?)\]$", pyproject, re.M | re.S).group(1)
    assert all(
        f'"{name}' in convert for name in ("scikit-learn", "joblib", "skl2onnx", "onnxruntime")
    )
    lines = [" ".join(c) for c in section.commands]

    def step(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert (
        step("python manage.py migrate")
        < step("python manage.py createsuperuser")
        < step("python manage.py collectstatic")
        < step("gunicorn config.wsgi:application")
    )
    assert step("celery -A config worker") and step("celery -A config beat")
    assert section.environment["DEBUG"] == "false"


def test_the_demo_serves_with_debug_off_on_a_fresh_checkout(tmp_path):
    """The README's first command: nothing configured but a fresh var/ folder. Its pages are
    styled (static files through WhiteNoise), a missing page is the project's 404 rather than
    Django's debug page, and signing in works over plain http."""
    port = free_port()
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("PIP_")
    }
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**keep, "MODELGATE_VAR_DIR": str(tmp_path / "var")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base, demo, timeout=240)
        browser = Browser(base)
        page = browser.get("/login/")
        (css,) = stylesheets(page.text)
        assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", css), css
        sheet = browser.get(css)
        assert sheet.status == 200 and sheet.headers["Content-Type"].startswith("text/css")
        missing = browser.get("/no-such-page/")
        assert missing.status == 404 and "There is nothing here" in missing.text
        assert "DEBUG = True" not in missing.text
        signed_in = browser.sign_in("carol", "modelgate-demo")
        assert (signed_in.status, signed_in.headers["Location"]) == (302, "/")
        assert "Waiting for your review" in browser.get("/").text
    finally:
        demo.send_signal(signal.SIGINT)  # as Ctrl-C would; its server and worker stop with it
        _, errors = demo.communicate(timeout=60)
    assert demo.returncode == 0, errors.decode()[-2000:]
    assert (tmp_path / "var" / "secret_key").exists()
