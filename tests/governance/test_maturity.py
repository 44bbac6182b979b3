"""The maturity scorecard: each metric's buckets on crafted models, the roll-up arithmetic
(metric → domain → model → team → organisation), who counts what, the access review service,
and a constant number of queries however many models."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cards import services as card_services
from cards.models import ModelCard
from core import permissions
from core.errors import Forbidden, NotFound
from core.models import AuditEvent
from core.permissions import Perm
from governance import access, promotions
from governance.maturity import catalogue, scorecard
from governance.maturity.catalogue import COMPLETE, MISSING, PARTIAL, Context, Metric
from registry import services
from registry.models import PackagingJob, RegisteredModel
from tests.factories import (
    SIGNATURE,
    GroupFactory,
    UserFactory,
    actor_for,
    approve_card,
    make_artifact,
    make_model,
    make_version,
    no_approval,
    place,
    superuser,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(roles: dict[str, Group]) -> User:
    return superuser()


def buckets(registered_model: RegisteredModel, *, now: Any = None) -> dict[str, int | None]:
    """Each metric's bucket for one model, as an administrator sees it."""
    card = scorecard.scorecard_for(superuser(), registered_model=registered_model, now=now)
    (model,) = card.models
    return {m.metric.key: m.bucket for m in model.metrics}


def bucket(registered_model: RegisteredModel, key: str, **kwargs: Any) -> int | None:
    return buckets(registered_model, **kwargs)[key]


def bare_version(user: User, registered_model: RegisteredModel, **kwargs: Any) -> Any:
    kwargs.setdefault("metrics", {})
    return make_version(user, registered_model, **kwargs)


# --- The catalogue ----------------------------------------------------------------------------


def test_the_catalogue_covers_every_domain_with_the_issues_metrics() -> None:
    keys = {m.key: m.domain for m in catalogue.metrics()}
    assert keys == {
        "card_approved": "documentation",
        "card_use_and_limitations": "documentation",
        "datasets_linked": "lineage",
        "code_ref_linked": "lineage",
        "features_linked": "lineage",
        "owner_set": "governance",
        "promotions_approved": "governance",
        "access_reviewed": "governance",
        "deployment_recorded": "operations",
        "production_reviewed": "operations",
        "deployed_version_approved": "operations",
        "metrics_recorded": "quality",
        "signature_present": "quality",
        "onnx_parity": "quality",
        "files_cleared": "quality",
    }
    domains = [m.domain for m in catalogue.metrics()]
    assert domains == sorted(domains, key=catalogue.DOMAIN_KEYS.index)
    for metric in catalogue.metrics():
        assert {COMPLETE, MISSING} <= set(metric.buckets), metric.key


def test_a_second_metric_under_a_known_key_is_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured

    known = catalogue.get("owner_set")
    catalogue.register(known)  # the same definition again: nothing happens
    with pytest.raises(ImproperlyConfigured):
        catalogue.register(Metric(**{**known.__dict__, "title": "Someone else's"}))


# --- Documentation ----------------------------------------------------------------------------


def test_card_approved_buckets(root: User) -> None:
    registered_model = make_model(root, "cards")
    assert bucket(registered_model, "card_approved") is None  # no version yet
    version = bare_version(root, registered_model)
    assert bucket(registered_model, "card_approved") == MISSING  # a draft
    card = ModelCard.objects.get(version=version)
    from tests.factories import FULL_CARD

    card = card_services.card_update(actor=actor_for(root), card=card, changes=FULL_CARD)
    card_services.card_submit(actor=actor_for(root), card=card)
    assert bucket(registered_model, "card_approved") == PARTIAL  # in review
    other = User.objects.create_superuser("other-root", "", "pw")
    card_services.card_review(
        actor=actor_for(other), card=card, decision="request_changes", comment="More."
    )
    assert bucket(registered_model, "card_approved") == PARTIAL  # changes requested
    approve_card(version)
    assert bucket(registered_model, "card_approved") == COMPLETE


def test_card_use_and_limitations_buckets(root: User) -> None:
    registered_model = make_model(root, "written")
    assert bucket(registered_model, "card_use_and_limitations") is None
    version = bare_version(root, registered_model)
    assert bucket(registered_model, "card_use_and_limitations") == MISSING
    card = ModelCard.objects.get(version=version)
    card = card_services.card_update(
        actor=actor_for(root), card=card, changes={"sections": {"limitations": "  \n "}}
    )
    assert bucket(registered_model, "card_use_and_limitations") == MISSING  # white space only
    card = card_services.card_update(
        actor=actor_for(root), card=card, changes={"sections": {"intended_use": "Scoring."}}
    )
    assert bucket(registered_model, "card_use_and_limitations") == PARTIAL
    card_services.card_update(
        actor=actor_for(root), card=card, changes={"sections": {"limitations": "Old data."}}
    )
    assert bucket(registered_model, "card_use_and_limitations") == COMPLETE


# --- Lineage ----------------------------------------------------------------------------------


def _run(user: User, run_id: str, *, datasets: list[tuple[Any, str]], code_ref: Any = None) -> Any:
    return services.training_run_create(
        actor=actor_for(user), run_id=run_id, datasets=datasets, code_ref=code_ref
    )


def test_lineage_buckets(root: User) -> None:
    actor = actor_for(root)
    source = services.feature_source_create(actor=actor, name="events")
    feature = services.logical_feature_create(actor=actor, source=source, name="clicks")
    with_features = services.dataset_create(actor=actor, name="train", features=[feature])
    without = services.dataset_create(actor=actor, name="test")
    code = services.code_ref_create(actor=actor, repository="git@example.com:ml", commit="abc123")

    empty = make_model(root, "no-version")
    no_run = make_model(root, "no-run")
    bare_version(root, no_run)
    partial = make_model(root, "partial")
    bare_version(
        root,
        partial,
        training_run=_run(root, "r1", datasets=[(with_features, "training")]),
    )
    mixed = make_model(root, "mixed")
    bare_version(
        root,
        mixed,
        training_run=_run(
            root, "r2", datasets=[(with_features, "training"), (without, "test")], code_ref=code
        ),
    )
    full = make_model(root, "full")
    bare_version(
        root,
        full,
        training_run=_run(
            root, "r3", datasets=[(with_features, "training"), (with_features, "validation")]
        ),
    )
    bare = make_model(root, "bare-run")
    bare_version(root, bare, training_run=_run(root, "r4", datasets=[(without, "test")]))

    keys = ("datasets_linked", "code_ref_linked", "features_linked")
    got = {m.name: tuple(buckets(m)[k] for k in keys) for m in (empty, no_run, partial, mixed)}
    got |= {m.name: tuple(buckets(m)[k] for k in keys) for m in (full, bare)}
    assert got == {
        "no-version": (None, None, None),
        "no-run": (MISSING, MISSING, MISSING),
        "partial": (PARTIAL, PARTIAL, COMPLETE),
        "mixed": (COMPLETE, COMPLETE, PARTIAL),
        "full": (COMPLETE, PARTIAL, COMPLETE),
        "bare-run": (PARTIAL, PARTIAL, MISSING),
    }


def test_the_focus_is_the_production_version_else_the_newest_live_one(root: User) -> None:
    registered_model = make_model(root, "focus")
    v1 = make_version(root, registered_model, metrics={"a": 1, "b": 2, "c": 3})
    v2 = bare_version(root, registered_model)
    assert bucket(registered_model, "metrics_recorded") == MISSING  # v2, the newest
    services.version_delete(actor=actor_for(root), version=v2)  # deleted versions never count
    assert bucket(registered_model, "metrics_recorded") == COMPLETE
    bare_version(root, registered_model)
    assert bucket(registered_model, "metrics_recorded") == MISSING
    place(v1, "production")
    bare_version(root, registered_model)
    card = scorecard.scorecard_for(root, registered_model=registered_model)
    assert (card.models[0].row.focus_number, card.models[0].row.focus_stage) == (1, "production")
    assert bucket(registered_model, "metrics_recorded") == COMPLETE


# --- Governance -------------------------------------------------------------------------------


def test_owner_set_buckets(root: User) -> None:
    owner = UserFactory(username="owner")
    owned = make_model(root, "owned", owner=owner)
    assert bucket(owned, "owner_set") == COMPLETE
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert bucket(owned, "owner_set") == PARTIAL
    RegisteredModel.objects.filter(pk=owned.pk).update(owner=None)
    assert bucket(owned, "owner_set") == MISSING


def _promote(root: User, version: Any) -> None:
    """Through a promotion request, under a policy that needs no approval and no readiness
    check (so it is applied at once)."""
    no_approval(version.registered_model, required_checks=[])
    promotions.promotion_request_create(
        actor=actor_for(root), version=version, target_stage="production"
    )


def test_promotions_approved_buckets(root: User) -> None:
    registered_model = make_model(root, "promoted")
    v1 = bare_version(root, registered_model)
    assert bucket(registered_model, "promotions_approved") is None  # never in production
    place(v1, "production")  # a direct move
    assert bucket(registered_model, "promotions_approved") == MISSING
    v2 = bare_version(root, registered_model)
    _promote(root, v2)
    v2.refresh_from_db()
    assert v2.stage == "production"
    assert bucket(registered_model, "promotions_approved") == PARTIAL
    other = make_model(root, "always-requested")
    place(bare_version(root, other), "staging")  # sets the no-approval policy; not production
    _promote(root, bare_version(root, other))
    assert bucket(other, "promotions_approved") == COMPLETE


def test_access_reviewed_buckets(root: User, settings: Any) -> None:
    settings.MATURITY_ACCESS_REVIEW_DAYS = 90
    registered_model = make_model(root, "reviewed")
    assert bucket(registered_model, "access_reviewed") == MISSING
    access.access_review_record(actor=actor_for(root), registered_model=registered_model)
    assert bucket(registered_model, "access_reviewed") == COMPLETE
    later = timezone.now() + timedelta(days=91)
    assert bucket(registered_model, "access_reviewed", now=later) == PARTIAL


def test_access_review_needs_manage_access_and_is_audited(
    root: User, data_scientist: User, viewer: User, outsider: User
) -> None:
    registered_model = make_model(data_scientist, "mine")  # the creator manages its access
    with pytest.raises(Forbidden):
        access.access_review_record(actor=actor_for(viewer), registered_model=registered_model)
    with pytest.raises(NotFound):
        access.access_review_record(actor=actor_for(outsider), registered_model=registered_model)
    assert not AuditEvent.objects.filter(action="access.reviewed").exists()
    access.access_review_record(actor=actor_for(data_scientist), registered_model=registered_model)
    event = AuditEvent.objects.get(action="access.reviewed")
    assert event.registered_model_id == registered_model.pk
    assert event.actor == data_scientist
    assert {"who": "alice", "perms": event.details["grants"][0]["perms"]} == (
        event.details["grants"][0]
    )


# --- Operations -------------------------------------------------------------------------------


def test_production_reviewed_buckets(root: User, reviewer: User, settings: Any) -> None:
    from tests.factories import gate, ready_version

    settings.MATURITY_PRODUCTION_REVIEW_DAYS = 180
    direct = make_model(root, "direct")
    v = bare_version(root, direct)
    assert bucket(direct, "production_reviewed") is None  # nothing in production
    place(v, "production")
    assert bucket(direct, "production_reviewed") == MISSING  # moved without a review

    author = UserFactory(username="author")
    reviewed = make_model(root, "reviewed-prod", owner=author)
    gate(reviewed)
    version = ready_version(root, reviewed)
    request = promotions.promotion_request_create(
        actor=actor_for(root), version=version, target_stage="production"
    )
    promotions.promotion_request_review(
        actor=actor_for(reviewer), promotion_request=request, decision="approve", comment="ok"
    )
    version.refresh_from_db()
    assert version.stage == "production"
    assert bucket(reviewed, "production_reviewed") == COMPLETE
    later = timezone.now() + timedelta(days=181)
    assert bucket(reviewed, "production_reviewed", now=later) == PARTIAL


def _deploy(root: User, version: Any, environment: str = "prod") -> Any:
    return services.deployment_create(
        actor=actor_for(root), version=version, environment=environment, target="k8s/scoring"
    )


def test_deployment_recorded_buckets(root: User) -> None:
    registered_model = make_model(root, "served")
    v1 = bare_version(root, registered_model)
    _deploy(root, v1, "staging")
    assert bucket(registered_model, "deployment_recorded") is None  # nothing in production
    other = make_model(root, "never-deployed")
    place(bare_version(root, other), "production")
    assert bucket(other, "deployment_recorded") == MISSING
    place(v1, "production")
    assert bucket(registered_model, "deployment_recorded") == PARTIAL  # serves in staging only
    _deploy(root, v1)
    assert bucket(registered_model, "deployment_recorded") == COMPLETE


def test_deployed_version_approved_buckets(root: User) -> None:
    registered_model = make_model(root, "approved-serving")
    v1 = bare_version(root, registered_model)
    _deploy(root, v1, "staging")
    assert bucket(registered_model, "deployed_version_approved") is None  # not in production
    place(v1, "production")
    assert bucket(registered_model, "deployed_version_approved") is None  # serves nowhere yet
    _deploy(root, v1)
    assert bucket(registered_model, "deployed_version_approved") == COMPLETE
    v2 = bare_version(root, registered_model)
    place(v2, "production", archive_existing=True)  # v1 archived, still deployed
    assert bucket(registered_model, "deployed_version_approved") == MISSING

    champion = make_model(root, "champion-serving")
    no_approval(champion, protected_aliases=["champion"], required_checks=[])
    v = bare_version(root, champion)
    promotions.promotion_request_create(actor=actor_for(root), version=v, target_alias="champion")
    _deploy(root, v)  # approved by its protected alias, not in production
    assert bucket(champion, "deployed_version_approved") == PARTIAL


# --- Quality ----------------------------------------------------------------------------------


def test_metrics_recorded_buckets(root: User, settings: Any) -> None:
    settings.MATURITY_MIN_METRICS = 3
    registered_model = make_model(root, "measured")
    assert bucket(registered_model, "metrics_recorded") is None
    bare_version(root, registered_model)
    assert bucket(registered_model, "metrics_recorded") == MISSING
    make_version(root, registered_model, metrics={"auc": 0.9})
    assert bucket(registered_model, "metrics_recorded") == PARTIAL
    make_version(root, registered_model, metrics={"auc": 0.9, "f1": 0.8, "recall": 0.7})
    assert bucket(registered_model, "metrics_recorded") == COMPLETE
    settings.MATURITY_MIN_METRICS = 4
    assert bucket(registered_model, "metrics_recorded") == PARTIAL


def test_signature_present_buckets(root: User) -> None:
    registered_model = make_model(root, "signed")
    assert bucket(registered_model, "signature_present") is None
    bare_version(root, registered_model)
    assert bucket(registered_model, "signature_present") == MISSING
    bare_version(root, registered_model, signature={"inputs": SIGNATURE["inputs"]})
    assert bucket(registered_model, "signature_present") == PARTIAL
    bare_version(root, registered_model, input_example={"age": [1]})
    assert bucket(registered_model, "signature_present") == PARTIAL
    bare_version(root, registered_model, signature=SIGNATURE)
    assert bucket(registered_model, "signature_present") == COMPLETE


def _job(version: Any, status: str, minutes: int) -> PackagingJob:
    """A finished conversion, as a worker leaves it."""
    when = timezone.now() + timedelta(minutes=minutes)
    return PackagingJob.objects.create(
        version=version,
        kind=PackagingJob.Kind.CONVERT_ONNX,
        status=status,
        created_at=when,
        updated_at=when,
        finished_at=when,
    )


def test_onnx_parity_buckets(root: User) -> None:
    registered_model = make_model(root, "onnx")
    version = bare_version(root, registered_model)
    assert bucket(registered_model, "onnx_parity") is None  # no file to convert
    make_artifact(root, version, data=b"not a model", filename="notes.txt")
    assert bucket(registered_model, "onnx_parity") is None  # nothing scikit-learn
    make_artifact(root, version)  # a pickle
    assert bucket(registered_model, "onnx_parity") == PARTIAL  # never checked
    _job(version, "failed", 1)
    assert bucket(registered_model, "onnx_parity") == MISSING
    _job(version, "succeeded", 2)
    assert bucket(registered_model, "onnx_parity") == COMPLETE
    _job(version, "running", 3)  # unfinished checks do not count
    assert bucket(registered_model, "onnx_parity") == COMPLETE


def test_files_cleared_buckets(root: User) -> None:
    registered_model = make_model(root, "files")
    version = bare_version(root, registered_model)
    assert bucket(registered_model, "files_cleared") is None  # no file
    make_artifact(root, version, filename="never.pkl", data=b"\x80\x04K\x02.", inspect=False)
    assert bucket(registered_model, "files_cleared") == MISSING
    make_artifact(root, version)  # inspected, safe
    assert bucket(registered_model, "files_cleared") == PARTIAL
    services.artifact_trust(
        actor=actor_for(root), artifact=version.artifacts.get(filename="never.pkl")
    )
    assert bucket(registered_model, "files_cleared") == COMPLETE


# --- Roll-up arithmetic -----------------------------------------------------------------------


def _fixed(key: str, domain: str, answers: dict[str, int | None]) -> Metric:
    def compute(models: Any, ctx: Context) -> dict[int, int | None]:
        names = {pk: row.name for pk, row in ctx.rows.items()}
        return {pk: answers[name] for pk, name in names.items()}

    return Metric(
        key=key,
        domain=domain,
        title=key,
        buckets={0: "", 1: "", 2: "", None: ""},
        compute=compute,
        fix_url=lambda row: f"/fix/{row.name}/{key}",
    )


def test_roll_up_keeps_the_distribution_at_every_level(root: User) -> None:
    risk = GroupFactory(name="risk")
    growth = GroupFactory(name="growth")
    for name, team in (("a", risk), ("b", risk), ("c", growth), ("d", None)):
        make_model(root, name, team=team)
    fixed = [
        _fixed("m1", "documentation", {"a": 2, "b": 0, "c": 2, "d": None}),
        _fixed("m2", "documentation", {"a": 2, "b": 1, "c": 0, "d": 0}),
        _fixed("m3", "quality", {"a": 1, "b": None, "c": 2, "d": 0}),
    ]
    card = scorecard.compute(RegisteredModel.objects.all(), catalogue=fixed)

    models = {m.row.name: m for m in card.models}
    assert models["a"].distribution.as_dict() == {
        "missing": 0,
        "partial": 1,
        "complete": 2,
        "not_applicable": 0,
    }
    assert models["a"].score == pytest.approx(5 / 6, abs=1e-4)
    assert models["b"].domains["documentation"].as_dict() == {
        "missing": 1,
        "partial": 1,
        "complete": 0,
        "not_applicable": 0,
    }
    assert models["b"].domains["quality"].score is None  # only n/a
    assert models["b"].score == 0.25  # (0 + 1) / (2 * 2)
    assert models["d"].score == 0.0
    # worst first, then by name
    assert [m.row.name for m in card.models] == ["d", "b", "c", "a"]
    # what is missing, with where to fix it
    assert [(m.metric.key, m.fix_url) for m in models["b"].missing] == [
        ("m1", "/fix/b/m1"),
        ("m2", "/fix/b/m2"),
    ]

    teams = {t.name: t for t in card.teams}
    assert set(teams) == {"risk", "growth", "No team"}
    assert teams["No team"].team_id == scorecard.NO_TEAM
    assert teams["risk"].models == 2
    assert teams["risk"].distribution.as_dict() == {
        "missing": 1,
        "partial": 2,
        "complete": 2,
        "not_applicable": 1,
    }
    assert teams["risk"].domains["documentation"].as_dict() == {
        "missing": 1,
        "partial": 1,
        "complete": 2,
        "not_applicable": 0,
    }
    assert teams["risk"].metrics["m3"].as_dict() == {
        "missing": 0,
        "partial": 1,
        "complete": 0,
        "not_applicable": 1,
    }
    assert teams["risk"].score == pytest.approx(6 / 10)

    org = card.organisation
    assert org.models == 4
    assert org.distribution.total == 4 * 3
    assert org.distribution.as_dict() == {
        "missing": 4,
        "partial": 2,
        "complete": 4,
        "not_applicable": 2,
    }
    for key in catalogue.DOMAIN_KEYS:
        summed = scorecard.Distribution()
        for team in card.teams:
            summed.merge(team.domains[key])
        assert summed == org.domains[key]
    assert org.score == pytest.approx((1 * 2 + 2 * 4) / (2 * 10))
    assert org.domains["operations"].total == 0 and org.domains["operations"].score is None


def test_every_model_answers_every_metric(root: User) -> None:
    for i in range(3):
        bare_version(root, make_model(root, f"m{i}"))
    make_model(root, "empty")
    card = scorecard.scorecard_for(root)
    n = len(catalogue.metrics())
    assert card.organisation.distribution.total == 4 * n
    assert all(len(m.metrics) == n for m in card.models)
    assert sum(t.distribution.total for t in card.teams) == 4 * n


# --- Who counts what --------------------------------------------------------------------------


def test_aggregates_count_only_the_models_the_user_may_view(
    root: User, outsider: User, viewer: User
) -> None:
    seen = make_model(root, "granted")
    hidden = make_model(root, "hidden")
    make_model(root, "also-hidden")
    deleted = make_model(root, "deleted")
    services.registered_model_delete(actor=actor_for(root), registered_model=deleted)
    assert scorecard.scorecard_for(outsider).organisation.models == 0
    assert scorecard.scorecard_for(outsider).models == []
    permissions.grant(Perm.VIEW, seen, user=outsider, granted_by=root)
    card = scorecard.scorecard_for(outsider)
    assert [m.row.name for m in card.models] == ["granted"]
    assert card.organisation.models == 1
    assert [t.models for t in card.teams] == [1]
    with pytest.raises(NotFound):
        scorecard.scorecard_for(outsider, registered_model=hidden)
    assert scorecard.scorecard_for(viewer).organisation.models == 3  # deleted ones never count
    assert scorecard.scorecard_for(None).organisation.models == 0


def test_a_team_is_found_only_through_models_the_user_sees(
    root: User, outsider: User, viewer: User
) -> None:
    team = GroupFactory(name="risk")
    empty = GroupFactory(name="empty")
    secret = make_model(root, "secret", team=team)
    with pytest.raises(NotFound):
        scorecard.scorecard_for(outsider, team=team.pk)
    assert scorecard.scorecard_for(viewer, team=team.pk).organisation.models == 1
    # an organisation viewer may open an existing team without models; nobody a missing one
    assert scorecard.scorecard_for(viewer, team=empty.pk).organisation.models == 0
    with pytest.raises(NotFound):
        scorecard.scorecard_for(viewer, team=999_999)
    permissions.grant(Perm.VIEW, secret, user=outsider, granted_by=root)
    assert scorecard.scorecard_for(outsider, team=team.pk).organisation.models == 1
    assert scorecard.scorecard_for(outsider, team=scorecard.NO_TEAM).organisation.models == 0


# --- Queries ----------------------------------------------------------------------------------


def _models(root: User, count: int, start: int = 0) -> None:
    team = GroupFactory(name="team")
    for i in range(start, start + count):
        registered_model = make_model(root, f"model-{i:03}", team=team if i % 2 else None)
        version = make_version(root, registered_model, signature=SIGNATURE)
        if i % 3 == 0:
            make_artifact(root, version, data=f"weights {i}".encode(), inspect=False)
            # serves in production by a protected alias, outside stage production: the
            # deployment check reads aliases and policies (the first model has it too, so the
            # one-model count includes those queries)
            no_approval(registered_model, protected_aliases=["champion"])
            services.alias_set(
                actor=actor_for(root),
                registered_model=registered_model,
                name="champion",
                version=version,
            )
            services.deployment_create(
                actor=actor_for(root),
                version=version,
                environment="prod",
                target=f"https://serve/{i}",
            )


def _queries(user: User) -> int:
    permissions.invalidate(user)
    with CaptureQueriesContext(connection) as captured:
        card = scorecard.scorecard_for(user)
    assert card.models
    return len(captured.captured_queries)


def test_the_scorecard_costs_the_same_queries_for_1_or_30_models(
    root: User, outsider: User, django_assert_max_num_queries: Any
) -> None:
    _models(root, 1)
    first = RegisteredModel.objects.get()
    permissions.grant(Perm.VIEW, first, user=outsider, granted_by=root)
    one, one_granted = _queries(root), _queries(outsider)
    _models(root, 29, start=1)
    for registered_model in RegisteredModel.objects.exclude(pk=first.pk):
        permissions.grant(Perm.VIEW, registered_model, user=outsider, granted_by=root)
    assert _queries(root) == one
    assert _queries(outsider) == one_granted
    with django_assert_max_num_queries(one_granted):
        permissions.invalidate(outsider)
        assert len(scorecard.scorecard_for(outsider).models) == 30
