"""Schemathesis against a live server: no input the schema allows, or breaks, is a 5xx, and every
answer matches the schema. Bounded in time (MODELGATE_FUZZ_SECONDS, default 60) and seeded, so a
CI run costs the same each time and a failure can be replayed with the printed seed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator

from core.tokens import token_create
from tests.factories import actor_for, make_model, make_version, superuser

FUZZ_SECONDS = int(os.environ.get("MODELGATE_FUZZ_SECONDS", "60"))
SEED = int(os.environ.get("MODELGATE_FUZZ_SEED", "20261203"))


@pytest.mark.django_db(transaction=True)
def test_no_request_the_schema_describes_gets_a_5xx_or_an_off_schema_answer(
    live_server, tmp_path: Path
):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency; its `st` command must be beside python"
    admin = superuser()
    for name in ("scorer", "ranker"):
        registered_model = make_model(admin, name)
        make_version(admin, registered_model)
        make_version(admin, registered_model)
    _, secret = token_create(actor=actor_for(admin), user=admin, name="fuzz")
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    report = tmp_path / "report"
    run = subprocess.run(
        [
            st,
            "run",
            str(schema),
            "--url",
            live_server.url,
            "--seed",
            str(SEED),
            "-H",
            f"Authorization: Bearer {secret}",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-time",
            str(FUZZ_SECONDS),
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 300,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
