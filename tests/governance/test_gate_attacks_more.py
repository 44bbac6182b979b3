"""More roads around the approval gate, tried the way an attacker would after issue 11 closed.

Each test asserts the secure behaviour. Roads still open are marked
``xfail(strict=True)`` with the reason; roads that held are plain tests (only those
tests/governance/test_gate_attacks.py does not already cover). Set-ups go through services
and factories; the attacker's own steps go through ``/api/v1/...`` or the pages.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent
from governance import content, promotions
from registry.models import Alias, Artifact, ModelVersion, RegisteredModel
from registry.services import jobs
from tests.cache import clear_cache
from tests.factories import (
    SIGNATURE,
    UserFactory,
    actor_for,
    make_artifact,
    make_model,
    make_version,
    ready_version,
    reviewer_named,
)
from tests.governance.test_gate_attacks import promote

pytestmark = pytest.mark.django_db

API = "/api/v1"
R = f"{API}/promotion-requests/"


# --- Helpers ----------------------------------------------------------------------------------


def gate_events(do: Callable[[], Any]) -> tuple[Any, list[AuditEvent]]:
    """Run one attempt in a fresh throttling window; return its response and the
    gate.refused events it left."""
    clear_cache()
    before = set(AuditEvent.objects.filter(action="gate.refused").values_list("pk", flat=True))
    response = do()
    return response, list(AuditEvent.objects.filter(action="gate.refused").exclude(pk__in=before))


def upload(
    api,
    user: User,
    registered_model: RegisteredModel,
    number: int,
    filename: str,
    data: bytes,
    query: str = "",
) -> Any:
    return api(user).post(
        f"{API}/models/{registered_model.name}/versions/{number}/artifacts/?filename={filename}{query}",
        data=data,
        content_type="application/octet-stream",
    )


def clearance(version: ModelVersion) -> dict[str, str]:
    return {a.filename: reason for a, reason in jobs.artifacts_clearance(version)}


# A protocol-0/3 pickle (no PROTO header: the unpickler does not need one) whose first nine
# bytes read as a safetensors header: SHORT_BINBYTES of 7 bytes "\0\0\0\0\0\0{" (so bytes 0-7
# are the little-endian length 1859 and byte 8 is "{"), POP, then GLOBAL os.system + REDUCE.
# Padding after STOP is never read by pickle.load.
DISGUISED_PICKLE = (
    b"C\x07"
    + b"\x00" * 6
    + b"{"
    + b"0"
    + b"cos\nsystem\n(S'id > /tmp/modelgate-pwned'\ntR."
    + b" " * 2000
)


def _mlflow_zip(pickled_name: str, pickled: bytes) -> bytes:
    """An MLflow model whose sklearn flavor loads `pickled_name` with pickle (what
    mlflow.sklearn.load_model does with `pickled_model`, whatever its suffix)."""
    mlmodel = (
        "artifact_path: model\n"
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        f"    model_path: {pickled_name}\n"
        "    env:\n      virtualenv: python_env.yaml\n"
        "    python_version: 3.11.9\n"
        "  sklearn:\n"
        f"    pickled_model: {pickled_name}\n"
        "    serialization_format: cloudpickle\n"
        "    sklearn_version: 1.4.2\n"
        "mlflow_version: 2.12.1\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MLmodel", mlmodel)
        archive.writestr(pickled_name, pickled)
        archive.writestr("requirements.txt", "scikit-learn==1.4.2\n")
    return buffer.getvalue()


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("id > /tmp/modelgate-pwned",))


# --- The scanner: files judged safe that a loader would run ------------------------------------


def test_a_pickle_disguised_as_safetensors_is_not_cleared(api, data_scientist):
    # DISGUISED_PICKLE really is a pickle (pickle.loads would run os.system; not run here).
    assert pickletools_ops(DISGUISED_PICKLE)[-1] == "STOP"
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    artifact = make_artifact(data_scientist, version, data=DISGUISED_PICKLE, filename="model.pkl")
    artifact.refresh_from_db()
    assert artifact.safety != "safe", (artifact.format, artifact.safety)
    assert clearance(version)["model.pkl"], "model.pkl cleared to load"
    assert artifact.format != Artifact.Format.SAFETENSORS


def pickletools_ops(data: bytes) -> list[str]:
    import pickletools

    return [op.name for op, _, _ in pickletools.genops(data)]


def test_an_mlflow_zip_whose_pickled_model_has_a_data_suffix_is_not_cleared(data_scientist):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    data = _mlflow_zip("model.json", pickle.dumps(_Boom(), protocol=4))
    artifact = make_artifact(data_scientist, version, data=data, filename="model.zip")
    artifact.refresh_from_db()
    assert artifact.format == Artifact.Format.MLFLOW
    assert artifact.safety != "safe"
    assert clearance(version)["model.zip"], "the MLflow zip was cleared to load"


def test_an_mlflow_zip_whose_pickled_model_is_a_pkl_is_unsafe(data_scientist):
    """The control for the attack above: the same payload under its own suffix is caught."""
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    version = make_version(data_scientist, registered_model, signature=SIGNATURE)
    data = _mlflow_zip("model.pkl", pickle.dumps(_Boom(), protocol=4))
    artifact = make_artifact(data_scientist, version, data=data, filename="model.zip")
    artifact.refresh_from_db()
    assert artifact.safety == "unsafe"
    assert clearance(version)["model.zip"]


# --- Refusals on the record -------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["production", "staging"])
def test_a_direct_stage_move_without_approval_is_refused_and_audited(
    api, data_scientist, ml_engineer, stage
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    ready_version(data_scientist, registered_model)
    response, events = gate_events(
        lambda: api(ml_engineer).post(
            f"{API}/models/scorer/versions/1/stage/", {"stage": stage}, format="json"
        )
    )
    assert response.status_code == 403 and response.json()["code"] == "approval_required"
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "none"
    }  # nothing moved
    assert len(events) == 1, "no gate.refused event"
    assert events[0].actor_id == ml_engineer.pk and events[0].details["reason"]


# --- Renaming: another model takes over the name CI resolves -----------------------------------


def test_a_serving_critical_model_cannot_be_renamed_away_by_its_creator(
    api, data_scientist, ml_engineer, reviewer, admin_user, roles
):
    registered_model = make_model(data_scientist, "fraud", risk_tier="critical")
    v1 = ready_version(data_scientist, registered_model)
    promote(registered_model, v1, ml_engineer, reviewer, admin_user)
    before = api(ml_engineer).get(f"{API}/models/fraud/resolve/?stage=production").json()

    r = api(data_scientist).patch(f"{API}/models/fraud/", {"name": "fraud-old"}, format="json")
    if r.status_code == 200:  # the open road: a low-tier impostor under the served name
        created = api(data_scientist).post(
            f"{API}/models/", {"name": "fraud", "risk_tier": "low"}, format="json"
        )
        assert created.status_code == 201, created.json()
        impostor = RegisteredModel.objects.get(name="fraud")
        v = make_version(data_scientist, impostor)
        make_artifact(data_scientist, v, data=pickle.dumps("other weights"))
        promote(impostor, v, ml_engineer, reviewer)  # one reviewer, no administrator
    after = api(ml_engineer).get(f"{API}/models/fraud/resolve/?stage=production").json()
    assert r.status_code in (403, 409), r.json()
    assert after["artifacts"] == before["artifacts"]
    registered_model.refresh_from_db()
    assert registered_model.name == "fraud"


# --- Roads that held ----------------------------------------------------------------------------


def test_an_upload_claiming_to_be_derived_is_still_refused_on_a_sealed_version(
    api, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "churn")
    v1 = ready_version(data_scientist, registered_model)
    promote(registered_model, v1, ml_engineer, reviewer)
    files = sorted(v1.artifacts.values_list("filename", "sha256"))
    for query in ("&derived=true", "&derived_by_job=1&derived_from=1"):
        r = upload(api, data_scientist, registered_model, 1, "model.onnx", b"\x08\x01onnx", query)
        assert r.status_code == 409 and r.json()["code"] == "version_sealed", r.json()
    r = api(data_scientist).post(
        f"{API}/models/churn/versions/1/artifacts/",
        {
            "file": io.BytesIO(b"\x08\x01onnx"),
            "filename": "model.onnx",
            "derived": "true",
            "derived_by_job": "1",
        },
        format="multipart",
    )
    assert r.status_code in (400, 409), r.json()
    assert sorted(v1.artifacts.values_list("filename", "sha256")) == files
    assert not Artifact.objects.filter(version=v1, derived=True).exists()


def test_deleting_a_protected_alias_does_not_let_it_be_recreated_without_a_request(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = ready_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    promote(
        registered_model,
        v1,
        ml_engineer,
        reviewer,
        reviewer_named(roles, "dave"),
        target_alias="prod",
    )
    client = api(data_scientist)
    assert client.delete(f"{API}/models/scorer/aliases/prod/").status_code == 204
    for name in ("prod", "Prod", "PRODUCTION", "champion"):
        response, events = gate_events(
            lambda name=name: client.put(
                f"{API}/models/scorer/aliases/{name}/", {"version": 2}, format="json"
            )
        )
        assert response.status_code == 403, response.json()
        assert response.json()["code"] == "approval_required"
        assert len(events) == 1
    assert not Alias.objects.filter(registered_model=registered_model).exists()


def test_taking_a_version_out_of_production_and_changing_it_loses_the_fast_track(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = reviewer_named(roles, "dave")
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    promote(registered_model, v1, ml_engineer, reviewer, dave)
    promote(registered_model, v2, ml_engineer, reviewer, dave)
    client = api(data_scientist)
    # v1 is archived (and not deployed): unsealed. Stage moves to none do not reseal it.
    assert (
        client.post(
            f"{API}/models/scorer/versions/1/stage/", {"stage": "none"}, format="json"
        ).status_code
        == 200
    )
    r = upload(api, data_scientist, registered_model, 1, "extra.pkl", pickle.dumps("swapped"))
    assert r.status_code == 201, r.json()
    r = api(ml_engineer).post(
        f"{API}/models/scorer/rollback/", {"justification": "v2 drifts"}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["version"] == 1
    assert r.json()["evaluation"]["fast_track"] is False
    r = api(reviewer).post(f"{R}{r.json()['id']}/reviews/", {"decision": "approve"}, format="json")
    # One approval does not apply it (here the new file is not inspected yet either).
    assert r.json().get("status") == "pending" or r.json()["code"] == "checks_failing", r.json()
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "none",
        2: "production",
    }


def test_a_creator_cannot_appoint_approvers_through_a_group(client, data_scientist, roles):
    from django.contrib.auth.models import Group

    from core import permissions
    from core.permissions import Perm

    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    team = Group.objects.create(name="friends")
    friend = UserFactory(username="friend")
    friend.groups.add(team)
    client.force_login(data_scientist)
    for perm in (Perm.APPROVE_PROMOTION, Perm.MANAGE_ACCESS):
        clear_cache()
        r = client.post(
            f"/models/{registered_model.name}/access/",
            {"who": "group:friends", "perm": str(perm), "action": "grant"},
        )
        assert r.status_code == 400
        event = AuditEvent.objects.filter(action="gate.refused").latest("sequence")
        assert event.details["code"] == "administrator_required"
    assert not permissions.has(friend, Perm.APPROVE_PROMOTION, registered_model)


def test_a_deleted_and_restored_version_does_not_keep_its_protected_alias(
    api, data_scientist, ml_engineer, reviewer, admin_user, roles
):
    from registry import services

    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = ready_version(data_scientist, registered_model)
    promote(
        registered_model,
        v1,
        ml_engineer,
        reviewer,
        reviewer_named(roles, "dave"),
        target_alias="prod",
    )
    assert api(data_scientist).delete(f"{API}/models/scorer/versions/1/").status_code == 204
    services.version_restore(actor=actor_for(admin_user), version=v1)
    assert not Alias.objects.filter(registered_model=registered_model).exists()
    assert content.seals(v1) == []
    r = api(ml_engineer).get(f"{API}/models/scorer/resolve/?alias=prod")
    assert r.status_code == 404, r.json()


# --- Bad input on these paths: 4xx, never 500 ---------------------------------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", R, {"model": "scorer", "version": "one", "target_stage": "production"}),
        ("post", R, {"model": "scorer", "version": 1, "target_stage": ["production"]}),
        ("post", R, {"model": "scorer", "version": 1, "target_alias": "a" * 500}),
        ("post", R, {"model": "scorer", "version": 1, "target_alias": "pr\u200bod"}),
        ("post", R, {"model": ["scorer"], "version": 1, "target_stage": "production"}),
        ("post", R, {"model": "scorer", "version": 2**70, "target_stage": "production"}),
        ("post", f"{R}999999/reviews/", {"decision": "approve"}),
        ("post", f"{R}1/reviews/", {"decision": ["approve"]}),
        ("post", f"{R}1/reviews/", {"decision": "approve", "comment": {"x": 1}}),
        (
            "post",
            f"{API}/models/scorer/versions/1/stage/",
            {"stage": "production", "archive_existing": "maybe"},
        ),
        ("put", f"{API}/models/scorer/aliases/prod/", {"version": 2**70}),
        ("put", f"{API}/models/scorer/aliases/%00/", {"version": 1}),
        ("post", f"{API}/models/scorer/versions/1/jobs/", {"kind": "inspect", "artifact": 2**70}),
        ("post", f"{API}/models/scorer/rollback/", {"justification": ["x"]}),
        (
            "post",
            f"{API}/deployments/",
            {"name": "scorer", "version": 1, "environment": "prod\x00", "target": "x"},
        ),
        ("get", f"{API}/models/scorer/resolve/?stage=production&alias=prod", None),
        ("patch", f"{API}/models/scorer/versions/1/", {"training_run": 2**70}),
        ("patch", f"{API}/models/scorer/versions/1/card/", {"sections": ["x"]}),
        ("post", f"{API}/models/scorer/versions/1/card/restore/", {"revision": 2**70}),
    ],
)
def test_bad_input_on_gate_paths_is_a_4xx(
    api, data_scientist, ml_engineer, reviewer, method, path, body
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    ready_version(data_scientist, registered_model)
    promotions.promotion_request_create(
        actor=actor_for(ml_engineer),
        version=registered_model.versions.get(),
        target_stage="staging",
        justification="x",
    )
    user = (
        reviewer
        if "reviews" in path
        else ml_engineer
        if ("promotion" in path or "rollback" in path or "stage" in path)
        else data_scientist
    )
    client = api(user)
    response = (
        getattr(client, method)(path, body, format="json") if body is not None else client.get(path)
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/models/scorer/resolve/?alias=pr%00od",
        f"{API}/models/scorer/resolve/?stage=produc%00tion",
        f"{API}/models/?name=sc%00",
        f"{R}?model=sc%00orer",
    ],
)
def test_a_nul_byte_in_a_lookup_is_a_4xx(api, data_scientist, ml_engineer, path):
    # PostgreSQL refuses NUL bytes in text (a DataError, once a 500): config/edge.py answers
    # 400 before any lookup runs.
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    ready_version(data_scientist, registered_model)
    response = api(ml_engineer).get(path)
    assert response.status_code < 500, (response.status_code, response.content[:200])


def test_a_required_check_this_release_does_not_have_blocks_the_gate(
    api, data_scientist, ml_engineer, roles
):
    """A policy row naming a check this release cannot run (from another release, or edited in
    the database) used to be skipped, so the gate opened without it. It now fails closed, on
    the request's checks, at approval and on the API's readiness answer."""
    from governance.models import Policy

    registered_model = make_model(data_scientist, "legacy", risk_tier="low")
    version = ready_version(data_scientist, registered_model)
    Policy.objects.filter(risk_tier="low").update(required_checks=["artifact", "legacy_scan"])
    clear_cache()
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=version, target_stage="production", justification="x"
    )
    outcome = next(c for c in promotions.evaluate(request).checks if c.name == "legacy_scan")
    assert outcome.required and not outcome.passed and "does not have" in outcome.message
    reviewer = reviewer_named(roles, "rita")
    r = api(reviewer).post(f"{R}{request.pk}/reviews/", {"decision": "approve"}, format="json")
    assert r.status_code in (201, 409), r.json()
    r = api(ml_engineer).post(f"{R}{request.pk}/apply/", format="json")
    assert r.status_code == 409, r.json()
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.status != "applied" and version.stage != "production"


@pytest.mark.parametrize(
    "stored", [["artifact", ["legacy"]], ["artifact", {"x": 1}], "artifact", {"a": 1}]
)
def test_a_required_checks_row_of_another_shape_fails_closed_without_failing(
    client, data_scientist, ml_engineer, stored
):
    """Rows edited in the database into shapes policies.validate never lets in: each such
    name is a failing required check under its own text, and the pages still answer."""
    from governance.models import Policy

    registered_model = make_model(data_scientist, "odd", risk_tier="low")
    version = ready_version(data_scientist, registered_model)
    Policy.objects.filter(risk_tier="low").update(required_checks=stored)
    clear_cache()
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=version, target_stage="production", justification="x"
    )
    failing = [c for c in promotions.evaluate(request).checks if c.blocking]
    assert failing and all("does not have" in c.message for c in failing)
    client.force_login(ml_engineer)
    assert client.get(f"/requests/{request.pk}/").status_code == 200
    assert client.get("/inbox/").status_code == 200


# --- A policy of zero approvals waives reviewers, not the checks ------------------------------


@pytest.fixture
def unreviewed(ml_engineer):
    """'free': a policy needing no approval that still requires a signature and the
    protected alias 'champion'; v1 has no signature (fails), v2 is ready (passes)."""
    from tests.factories import no_approval

    registered_model = make_model(ml_engineer, "free")
    make_version(ml_engineer, registered_model, signature=None)
    ready_version(ml_engineer, registered_model)
    no_approval(registered_model, required_checks=["signature"], protected_aliases=["champion"])
    clear_cache()
    return registered_model


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_a_direct_stage_move_under_zero_approvals_still_needs_the_required_checks(
    api, ml_engineer, unreviewed, stage
):
    client = api(ml_engineer)
    history = AuditEvent.objects.filter(action="version.stage_changed").count()
    r, refused = gate_events(
        lambda: client.post(f"{API}/models/free/versions/1/stage/", {"stage": stage}, format="json")
    )
    assert r.status_code == 409 and r.json()["code"] == "checks_failing", r.json()
    assert "signature" in r.json()["message"].lower()
    assert refused and refused[0].details["wanted"] == f"move to {stage}"
    r = client.post(
        "/api/2.0/mlflow/model-versions/transition-stage",
        {"name": "free", "version": "1", "stage": stage.title()},
        format="json",
    )
    assert r.status_code in (400, 409) and "signature" in r.content.decode().lower(), r.content
    assert ModelVersion.objects.get(registered_model=unreviewed, version=1).stage == "none"
    assert AuditEvent.objects.filter(action="version.stage_changed").count() == history
    # The ready version moves as before.
    r = client.post(f"{API}/models/free/versions/2/stage/", {"stage": stage}, format="json")
    assert r.status_code == 200, r.json()


def test_a_protected_alias_under_zero_approvals_still_needs_the_required_checks(
    api, ml_engineer, unreviewed
):
    client = api(ml_engineer)
    r, refused = gate_events(
        lambda: client.put(f"{API}/models/free/aliases/champion/", {"version": 1}, format="json")
    )
    assert r.status_code == 409 and r.json()["code"] == "checks_failing", r.json()
    assert refused and not Alias.objects.filter(registered_model=unreviewed).exists()
    r = client.post(
        "/api/2.0/mlflow/registered-models/alias",
        {"name": "free", "alias": "Champion", "version": "1"},
        format="json",
    )
    assert r.status_code in (400, 409), r.content
    assert not Alias.objects.filter(registered_model=unreviewed).exists()
    # An alias nobody protects is no gate; the ready version takes the protected one.
    assert (
        client.put(f"{API}/models/free/aliases/scratch/", {"version": 1}, format="json").status_code
        == 200
    )
    assert (
        client.put(
            f"{API}/models/free/aliases/champion/", {"version": 2}, format="json"
        ).status_code
        == 200
    )


def test_zero_approvals_with_an_administrator_required_is_no_direct_road(
    api, ml_engineer, unreviewed
):
    from governance.models import Policy

    Policy.objects.filter(registered_model=unreviewed).update(admin_approval_required=True)
    clear_cache()
    client = api(ml_engineer)
    r = client.post(f"{API}/models/free/versions/2/stage/", {"stage": "production"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "approval_required", r.json()
    assert "administrator" in r.json()["message"]
    r = client.put(f"{API}/models/free/aliases/champion/", {"version": 2}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "approval_required", r.json()
    assert ModelVersion.objects.get(registered_model=unreviewed, version=2).stage == "none"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_direct_move_is_judged_under_the_version_s_lock(ml_engineer, monkeypatch):
    """The direct road judged readiness before taking any lock, so a change committed between
    the check and the move (a signature removed) went into production unchecked. The check
    now runs under the model's and the version's row locks, as a request's does: the change
    waits for the move, and then finds the version sealed."""
    import threading
    import time

    from django.db import connections

    from core.errors import Conflict
    from registry import services
    from tests.factories import no_approval

    registered_model = make_model(ml_engineer, "racing")
    version = ready_version(ml_engineer, registered_model)
    no_approval(registered_model, required_checks=["signature"])
    checked, release = threading.Event(), threading.Event()
    real = promotions.preview
    outcome: dict[str, str] = {}

    def paused(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        checked.set()
        release.wait(10)
        return found

    monkeypatch.setattr(promotions, "preview", paused)

    def mover() -> None:
        try:
            services.version_stage_set(
                actor=actor_for(ml_engineer),
                version=ModelVersion.objects.get(pk=version.pk),
                stage="production",
            )
            outcome["move"] = "moved"
        finally:
            connections.close_all()

    def editor() -> None:
        try:
            services.version_update(
                actor=actor_for(ml_engineer),
                version=ModelVersion.objects.get(pk=version.pk),
                signature=None,
            )
            outcome["edit"] = "changed"
        except Conflict as exc:
            outcome["edit"] = exc.code
        finally:
            connections.close_all()

    move = threading.Thread(target=mover)
    move.start()
    assert checked.wait(10)
    edit = threading.Thread(target=editor)
    edit.start()
    time.sleep(0.5)
    assert edit.is_alive()  # waiting for the version's lock, held by the move
    release.set()
    move.join(10)
    edit.join(10)
    assert outcome == {"move": "moved", "edit": "version_sealed"}
    version.refresh_from_db()
    assert version.stage == "production" and version.signature


def test_moving_a_protected_alias_directly_needs_the_right_to_request_promotions(
    api, data_scientist, unreviewed
):
    """A protected alias marks what serves: under zero approvals, whoever could only edit the
    model (no right to request a promotion, so no way to move its stage) pointed it anyway."""
    from core import permissions
    from core.permissions import Perm

    permissions.grant(Perm.VIEW, unreviewed, user=data_scientist)
    permissions.grant(Perm.CHANGE, unreviewed, user=data_scientist)
    client = api(data_scientist)
    r = client.put(f"{API}/models/free/aliases/champion/", {"version": 2}, format="json")
    assert r.status_code == 403, r.json()
    r = client.post(
        "/api/2.0/mlflow/registered-models/alias",
        {"name": "free", "alias": "champion", "version": "2"},
        format="json",
    )
    assert r.status_code == 403, r.content
    assert not Alias.objects.filter(registered_model=unreviewed).exists()
    # Editing stays editing: an alias nobody protects still moves.
    r = client.put(f"{API}/models/free/aliases/scratch/", {"version": 2}, format="json")
    assert r.status_code == 200, r.json()
