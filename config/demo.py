"""A realistic demo data set, created through the services so every invariant holds
(version numbers, grants, audit trail).

Its lineage is a graph worth drawing: several feature sources whose features several datasets
share, datasets (two of them in two versions) that training runs of different models read
in training, validation and test roles, code references shared by many runs, and deployments,
active and retired, in production and staging. Its models are not all managed equally well
(PROFILES), so the maturity scorecard has every bucket filled: one model does everything
right, the others each miss something a reviewer would notice.
"""

from __future__ import annotations

import io
import logging
import pickle
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from cards import services as card_services
from cards.models import ModelCard
from core import permissions
from core.actors import Actor
from core.permissions import Perm
from governance import access, accounts, policies, promotions
from governance.models import PromotionRequest
from governance.roles import defaults_sync
from registry import services
from registry.models import (
    CodeRef,
    Dataset,
    Deployment,
    LogicalFeature,
    ModelVersion,
    PackagingJob,
    RegisteredModel,
)
from registry.services.artifacts import read_chunks
from registry.tasks import run_job

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "modelgate-demo"
DEMO_USERS = [
    # username, role group, superuser, what they show
    ("admin", "admin", True, "administrator: everything, including the admin site"),
    ("alice", "data scientist", False, "data scientist: registers models and versions"),
    ("bob", "ml engineer", False, "ML engineer: also requests promotions"),
    ("carol", "reviewer", False, "reviewer: approves promotions"),
    ("dave", "reviewer", False, "second reviewer, for high-risk models"),
    ("victor", "viewer", False, "viewer: reads everything, changes nothing"),
    ("olivia", None, False, "outsider: sees only churn-predictor, granted per model"),
]
# Owns churn-predictor, then left: her account is deactivated (no login).
FORMER_OWNER = "erin"

_TABULAR = [
    ("age", "long"),
    ("income", "double"),
    ("debt_ratio", "double"),
    ("employment_years", "long"),
    ("region", "string"),
]

DEMO_MODELS = [
    (
        "credit-risk-classifier",
        "high",
        "risk",
        "Probability of default for retail credit "
        "applications. Used by the **loan origination** service.",
        "sklearn",
        6,
        {"team": "risk", "domain": "lending"},
    ),
    (
        "fraud-detector",
        "critical",
        "payments",
        "Flags card transactions for manual review within 50 ms.",
        "xgboost",
        5,
        {"team": "payments", "domain": "fraud"},
    ),
    (
        "churn-predictor",
        "medium",
        "growth",
        "Monthly churn propensity per subscriber.",
        "sklearn",
        4,
        {"team": "growth"},
    ),
    (
        "demand-forecaster",
        "low",
        "supply",
        "Daily demand per store and product family.",
        "lightgbm",
        3,
        {"team": "supply", "cadence": "daily"},
    ),
    (
        "support-ticket-router",
        "medium",
        "support",
        "Routes incoming tickets to the right queue.",
        "pytorch",
        4,
        {"team": "support", "modality": "text"},
    ),
    (
        "image-defect-detector",
        "high",
        "manufacturing",
        "Detects surface defects on the assembly line cameras.",
        "onnx",
        3,
        {"team": "manufacturing", "modality": "vision"},
    ),
]

# --- The lineage catalogue -------------------------------------------------------------------

# Feature sources and the logical features each offers (feature names are unique across them).
SOURCES = [
    (
        "warehouse.customers",
        "table",
        "postgres://dwh/customers",
        [("age", "long"), ("income", "double"), ("employment_years", "long"), ("region", "string")],
    ),
    (
        "warehouse.credit_bureau",
        "table",
        "postgres://dwh/credit_bureau",
        [("debt_ratio", "double"), ("open_credit_lines", "long"), ("delinquencies_24m", "long")],
    ),
    (
        "kafka.card_transactions",
        "stream",
        "kafka://events/card-transactions",
        [
            ("amount", "double"),
            ("merchant_category", "string"),
            ("hour_of_day", "long"),
            ("country_mismatch", "boolean"),
        ],
    ),
    (
        "warehouse.subscriptions",
        "table",
        "postgres://dwh/subscriptions",
        [("tenure_months", "long"), ("monthly_spend", "double"), ("support_tickets_90d", "long")],
    ),
    (
        "warehouse.store_sales",
        "table",
        "postgres://dwh/store_sales",
        [("units_sold", "long"), ("product_family", "string"), ("promo_flag", "boolean")],
    ),
]
_BUREAU = ("income", "debt_ratio", "open_credit_lines", "delinquencies_24m")
# Datasets by (name, version) and the features they hold; () for data without listed features
# (labels, free text, images).
DATASETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("customer-profile", "2026-09"): ("age", "income", "employment_years", "region"),
    ("customer-profile", "2026-10"): ("age", "income", "employment_years", "region", "debt_ratio"),
    ("credit-applications", "2026-10"): _BUREAU,
    ("credit-holdout", "2026-10"): _BUREAU,
    ("card-transactions", "2026-10"): (
        "amount",
        "merchant_category",
        "hour_of_day",
        "country_mismatch",
    ),
    ("chargebacks", "2026-10"): (),
    ("subscriptions-monthly", "2026-10"): ("tenure_months", "monthly_spend", "support_tickets_90d"),
    ("store-sales", "2026-10"): ("units_sold", "product_family", "promo_flag", "region"),
    ("support-tickets", "2026-10"): (),
    ("support-tickets-labelled", "2026-10"): (),
    ("line-camera-images", "2026-08"): (),
    ("line-camera-images", "2026-10"): (),
}
CODE_REFS = {
    "tabular-v1": (
        "git@example.com:ml/models.git",
        "3f9c2ab51e7d4c0a9b8f6e5d4c3b2a1908f7e6d5",
        "train.py",
    ),
    "tabular-v2": (
        "git@example.com:ml/models.git",
        "8d41e0c6a2f94b1d7e3c5a60b9f8e7d6c5b4a392",
        "train.py",
    ),
    "forecast": (
        "git@example.com:ml/models.git",
        "8d41e0c6a2f94b1d7e3c5a60b9f8e7d6c5b4a392",
        "forecast.py",
    ),
    "nlp": (
        "git@example.com:ml/nlp.git",
        "c07e5d1f9a3b48e2b6d0f1a2c3e4d5b6a7980e1f",
        "router/train.py",
    ),
    "vision": (
        "git@example.com:ml/vision.git",
        "5b2f8e1d0c9a47b3e6f5d4c3b2a1f0e9d8c7b6a5",
        "detector/train.py",
    ),
}
Training = tuple[str | None, list[tuple[tuple[str, str], str]]]


def training_of(name: str, n: int) -> Training | None:
    """What version `n` of a demo model was trained from: (code reference, [(dataset, role)]),
    or None where nobody recorded a training run. customer-profile moved to its 2026-10
    snapshot in the autumn: the older versions of three models read 2026-09."""
    profile = ("customer-profile", "2026-09" if n <= 2 else "2026-10")
    if name == "credit-risk-classifier":
        return (
            "tabular-v1" if n <= 3 else "tabular-v2",
            [
                (("customer-profile", "2026-09" if n <= 3 else "2026-10"), "training"),
                (("credit-applications", "2026-10"), "training"),
                (("credit-holdout", "2026-10"), "test"),
            ],
        )
    if name == "fraud-detector":
        return (
            "tabular-v2",
            [
                (("card-transactions", "2026-10"), "training"),
                (profile, "training"),
                (("chargebacks", "2026-10"), "test"),
            ],
        )
    if name == "churn-predictor":  # a notebook's runs: no code reference, nothing held out
        return (None, [(("subscriptions-monthly", "2026-10"), "training"), (profile, "training")])
    if name == "demand-forecaster":  # recorded only since the newest version
        if n < 3:
            return None
        return ("forecast", [(("store-sales", "2026-10"), "training")])
    if name == "support-ticket-router":
        return (
            "nlp",
            [
                (("support-tickets", "2026-10"), "training"),
                (("support-tickets-labelled", "2026-10"), "validation"),
            ],
        )
    return (
        "vision",
        [
            (("line-camera-images", "2026-08"), "training"),
            (("line-camera-images", "2026-10"), "validation"),
        ],
    )


# --- How well each model is managed -----------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What a demo model does right and what it misses (the scorecard's story)."""

    owner: str | None = "alice"  # None: the owner was removed and nobody took over
    # "approved": every promoted version's card is approved; "unfinished": written without its
    # limitations and never submitted; "none": never written.
    card: str = "approved"
    # After approval, the production version's card was edited and sent back to review.
    card_revised: bool = False
    # The signature's input columns; () for an image model's tensors.
    columns: tuple[tuple[str, str], ...] = tuple(_TABULAR)
    outputs: bool = True  # the signature declares outputs, not only inputs
    metrics: int = 3
    # The production version also holds a file the inspection cannot vouch for.
    extra_file: bool = False
    # This version was pushed into production directly (a one-off policy override) without
    # metrics, signature or card, its one file of a format nobody can inspect.
    pushed: int | None = None
    # Someone tried "Convert to ONNX" on the production version; it failed (the input example
    # is not numeric, so parity cannot be checked).
    onnx_failed: bool = False
    # An administrator reviewed who may access the model.
    access_reviewed: bool = True
    # Production targets per version counted from the production one (-1: the one before).
    # A target deployed again retires its previous deployment; one never redeployed stays.
    rollout: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # Which version (counted from the production one) serves in staging, if any.
    staging: int | None = None


PROFILES = {
    # Everything right: the example the others are measured against.
    "credit-risk-classifier": Profile(
        columns=(
            ("age", "long"),
            ("income", "double"),
            ("debt_ratio", "double"),
            ("employment_years", "long"),
        ),
        rollout={-1: ("",), 0: ("",)},
        staging=1,
    ),
    # Its production card was revised and waits for review; nobody reviewed its access; the
    # EU region still serves the archived version.
    "fraud-detector": Profile(
        owner="bob",
        card_revised=True,
        columns=(
            ("amount", "double"),
            ("merchant_category", "string"),
            ("hour_of_day", "long"),
            ("country_mismatch", "boolean"),
        ),
        onnx_failed=True,
        access_reviewed=False,
        rollout={-1: ("us", "eu"), 0: ("us",)},
        staging=1,
    ),
    # Its owner left; the card was never finished; few metrics, inputs without outputs.
    "churn-predictor": Profile(
        owner=FORMER_OWNER,
        card="unfinished",
        columns=(
            ("tenure_months", "long"),
            ("monthly_spend", "double"),
            ("support_tickets_90d", "long"),
            ("region", "string"),
        ),
        outputs=False,
        metrics=2,
        extra_file=True,
        rollout={0: ("",)},
        staging=1,
    ),
    # Low risk, little recorded: no lineage for the version in production, no deployment.
    "demand-forecaster": Profile(access_reviewed=False),
    # Version 3 was pushed straight to production; nobody owns the model any more.
    "support-ticket-router": Profile(
        owner=None,
        card="none",
        columns=(("subject", "string"), ("body", "string"), ("channel", "string")),
        pushed=3,
        staging=0,
    ),
    "image-defect-detector": Profile(owner="bob", columns=(), rollout={0: ("",)}),
}


def _tiny_model_file(seed: int) -> bytes:
    """Stand-in model bytes: a pickle the server stores and hashes but never loads."""
    rng = random.Random(seed)
    return pickle.dumps(
        {"coef": [rng.random() for _ in range(64)], "intercept": rng.random()}, protocol=4
    )


_TEXT = {
    "region": "north",
    "merchant_category": "groceries",
    "subject": "Refund not received",
    "body": "I returned the order two weeks ago and have not been refunded.",
    "channel": "email",
}


def _signature(profile: Profile) -> dict[str, Any]:
    if not profile.columns:  # camera frames in, defect probabilities out
        return {
            "inputs": [
                {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, 224, 224]}}
            ],
            "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}],
        }
    signature: dict[str, Any] = {"inputs": [{"name": c, "type": t} for c, t in profile.columns]}
    if profile.outputs:
        signature["outputs"] = [{"name": "score", "type": "double"}]
    return signature


def _example(profile: Profile, n: int) -> list[dict[str, object]] | None:
    if not profile.columns:
        return None
    numbers = {"long": 7 + n, "double": round(0.31 * n, 2), "boolean": n % 2 == 0}
    return [{c: _TEXT[c] if t == "string" else numbers[t] for c, t in profile.columns}]


def demo_exists() -> bool:
    return RegisteredModel.objects.filter(name=DEMO_MODELS[0][0]).exists()


def demo_load() -> list[tuple[str, str, str]]:
    """Create users, roles, models, versions in every stage, lineage and deployments.
    Returns the logins as (username, password, description)."""
    defaults_sync(actor=Actor.system("cli"))  # migrate did it too; a tampered role is repaired
    users: dict[str, User] = {}
    for username, role, superuser, _ in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "email": f"{username}@example.com",
                "is_staff": superuser,
                "is_superuser": superuser,
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if role:
            user.groups.add(Group.objects.get(name=role))
        users[username] = user
    if not demo_exists():
        _load_models(users)
    return [(u, DEMO_PASSWORD, what) for u, _, _, what in DEMO_USERS]


class _Catalogue:
    """The lineage records, created once and shared by the models' training runs."""

    def __init__(self, actor: Actor) -> None:
        self.features: dict[str, LogicalFeature] = {}
        for name, kind, uri, offered in SOURCES:
            source = services.feature_source_create(actor=actor, name=name, kind=kind, uri=uri)
            for feature, dtype in offered:
                self.features[feature] = services.logical_feature_create(
                    actor=actor, source=source, name=feature, dtype=dtype
                )
        rng = random.Random(7)
        self.datasets: dict[tuple[str, str], Dataset] = {
            (name, version): services.dataset_create(
                actor=actor,
                name=name,
                version=version,
                uri=f"s3://datasets/{name}/{version}/",
                digest=f"sha256:{rng.getrandbits(256):064x}",
                features=[self.features[f] for f in held],
            )
            for (name, version), held in DATASETS.items()
        }
        self.code: dict[str, CodeRef] = {
            key: services.code_ref_create(
                actor=actor, repository=repository, commit=commit, path=path
            )
            for key, (repository, commit, path) in CODE_REFS.items()
        }


def _load_models(users: dict[str, User]) -> None:
    admin = Actor.system("cli", user=users["admin"])
    alice = Actor.system("cli", user=users["alice"])
    rng = random.Random(42)
    now = timezone.now()
    teams = {
        name: Group.objects.get_or_create(name=f"team-{name}")[0]
        for name in {m[2] for m in DEMO_MODELS}
    }
    erin = accounts.user_create(
        actor=admin, username=FORMER_OWNER, email=f"{FORMER_OWNER}@example.com"
    )
    accounts.user_update(actor=admin, user=erin, groups=[Group.objects.get(name="data scientist")])
    owners = {**users, FORMER_OWNER: erin}
    with transaction.atomic():
        catalogue = _Catalogue(alice)
    for m_i, (name, tier, team, description, flavor, n_versions, tags) in enumerate(DEMO_MODELS):
        profile = PROFILES[name]
        with transaction.atomic():
            registered_model = services.registered_model_create(
                actor=alice,
                name=name,
                description=description,
                owner=owners[profile.owner or "alice"],
                team=teams[team],
                risk_tier=tier,
                tags=tags,
            )
            auc = 0.70 + rng.random() * 0.05
            for n in range(1, n_versions + 1):
                auc = min(0.99, auc + rng.random() * 0.03)
                version = _version(
                    alice,
                    registered_model,
                    catalogue,
                    profile,
                    flavor=flavor,
                    n=n,
                    seed=m_i * 100 + n,
                    focus=n == n_versions - 1,
                    auc=auc,
                    latency=8 + rng.random() * 4,
                    started=now - timedelta(days=40 - n * 5, hours=2),
                )
                if n == 1 and profile.card == "unfinished":
                    _write_card(users, version, leave_out=("limitations",))
            _stage_versions(users, registered_model, n_versions, profile)
            _govern(users, registered_model, n_versions, profile)
        if name == "churn-predictor":
            permissions.grant(Perm.VIEW, registered_model, user=users["olivia"])
        if name == "demand-forecaster":  # alice's own model: she may ask for its promotions
            permissions.grant(Perm.REQUEST_PROMOTION, registered_model, user=users["alice"])
    # churn-predictor's owner left the company: her account stays, deactivated.
    accounts.user_update(actor=admin, user=erin, is_active=False)


def _version(
    alice: Actor,
    registered_model: RegisteredModel,
    catalogue: _Catalogue,
    profile: Profile,
    *,
    flavor: str,
    n: int,
    seed: int,
    focus: bool,
    auc: float,
    latency: float,
    started: datetime,
) -> ModelVersion:
    """Version `n` with its training run, metrics, signature and files, the files inspected
    here rather than by the worker (its queued message then finds the job done)."""
    name = registered_model.name
    run = None
    trained = training_of(name, n)
    if trained is not None:
        code, datasets = trained
        run = services.training_run_create(
            actor=alice,
            run_id=f"{name}-run-{n}",
            name=f"{name} training #{n}",
            code_ref=catalogue.code[code] if code else None,
            datasets=[(catalogue.datasets[key], role) for key, role in datasets],
            params={"max_depth": 4 + n, "learning_rate": round(0.1 / n, 4)},
            started_at=started,
            ended_at=started + timedelta(hours=2),
        )
    pushed = n == profile.pushed
    metrics = [
        {"name": "auc", "value": round(auc, 4), "dataset": f"{name}-holdout", "split": "test"},
        {"name": "accuracy", "value": round(auc - 0.05, 4)},
        {"name": "latency_ms", "value": round(latency, 2)},
    ]
    version, _ = services.version_create(
        actor=alice,
        registered_model=registered_model,
        description=f"Retrained on the {2026}-{n + 4:02d} snapshot.",
        source=f"s3://models/{name}/{n}/",
        run_id=run.run_id if run else "",
        flavor=flavor,
        training_run=run,
        params={
            "max_depth": 4 + n,
            "learning_rate": round(0.1 / n, 4),
            "n_estimators": 100 * n,
        },
        metrics=[] if pushed else metrics[: profile.metrics],
        signature=None if pushed else _signature(profile),
        input_example=None if pushed else _example(profile, n),
        pip_requirements=["scikit-learn==1.9.0", "numpy>=2"],
        python_version="3.11.7",
        tags={"trained_by": "pipeline"},
    )
    if focus and not pushed:
        services.version_evaluations_log(
            actor=alice, version=version, evaluations=_evaluations(name, auc)
        )
    if pushed:  # bytes of no format the inspection knows
        files = [("model.bin", _tiny_model_file(seed)[::-1])]
    elif flavor == "onnx":  # an ONNX file needs no scan, and there is nothing to convert
        files = [("model.onnx", b"\x08\x07" + _tiny_model_file(seed))]
    else:
        files = [("model.pkl", _tiny_model_file(seed))]
    if focus and profile.extra_file:
        files.append(("encoder.bin", _tiny_model_file(seed + 1)[::-1]))
    for filename, data in files:
        artifact = services.artifact_upload(
            actor=alice, version=version, filename=filename, chunks=read_chunks(io.BytesIO(data))
        )
        run_job.apply(args=[artifact.jobs.get(kind=PackagingJob.Kind.INSPECT).pk])
    return version


def _evaluations(name: str, auc: float) -> list[dict[str, Any]]:
    """A confusion matrix, a ROC curve and AUC by region, shaped by the version's AUC (the
    curve is illustrative: the area under its points is not the recorded AUC)."""
    caught = round(80 * auc)
    lift = 2 * auc - 1  # how far the curve bows above the diagonal
    points = [
        {"x": x, "y": round(min(1.0, x + lift * (1 - x) * x**0.3), 4)}
        for x in (0, 0.05, 0.1, 0.2, 0.4, 0.7, 1)
    ]
    scope = {"dataset": f"{name}-holdout", "split": "test"}
    return [
        {
            "name": "confusion_matrix",
            "kind": "confusion_matrix",
            "data": {
                "labels": ["positive", "negative"],
                "matrix": [[caught, 80 - caught], [60, 860]],
            },
            **scope,
        },
        {"name": "roc", "kind": "curve", "data": {"curve": "roc", "points": points}, **scope},
        {
            "name": "auc_by_region",
            "kind": "slices",
            "data": {
                "metric": "auc",
                "slices": [
                    {"slice": region, "value": round(auc + shift, 4), "count": count}
                    for region, shift, count in (
                        ("north", 0.01, 410),
                        ("south", -0.02, 380),
                        ("east", 0.0, 210),
                    )
                ],
            },
            **scope,
        },
    ]


def _card(name: str, description: str, flavor: str) -> dict[str, Any]:
    return {
        "model_details": {
            "authors": ["Alice Martin", "Risk ML team"],
            "model_type": flavor,
            "architecture": "Gradient-boosted trees over tabular features",
        },
        "sections": {
            "intended_use": f"{description}\n\nFor internal decision support by trained "
            "staff; every automated decision can be appealed.",
            "out_of_scope": "Not for decisions about individuals outside the markets it was "
            "trained on; not a substitute for regulatory checks.",
            "training_data": f"`{name}-training` 2026-10 snapshot from the customer warehouse: "
            "age, income, debt ratio, employment years, region.",
            "evaluation_data": "A held-out 20% split of the same snapshot, stratified by region.",
            "performance": "AUC is stable across regions (±0.02); accuracy drops for "
            "customers with under a year of history.",
            "limitations": "Thin-file customers get less reliable scores. Seasonal effects "
            "after the snapshot are not represented.",
            "bias_fairness": "Approval rates were compared by age band and region; the "
            "largest gap is 3 points (north vs south), under the 5-point "
            "threshold.",
            "ethical_considerations": "Personal data is pseudonymised; no protected "
            "attributes are inputs.",
            "recommendations": "Review scores near the threshold by hand; retrain quarterly.",
            "caveats": "Region is a coarse proxy; do not use it to target individuals.",
        },
        "metadata": {
            "license": "other",
            "languages": ["en"],
            "tags": ["tabular", "demo"],
            "library_name": "sklearn",
            "pipeline_tag": "tabular-classification",
            "datasets": [f"{name}-training"],
        },
    }


def _write_card(
    users: dict[str, User], version: ModelVersion, leave_out: tuple[str, ...] = ()
) -> ModelCard:
    """Alice writes the version's card (later versions start from a copy of it), leaving out
    the sections named."""
    card = ModelCard.objects.select_related("registered_model").get(version=version)
    registered_model = card.registered_model
    content = _card(registered_model.name, registered_model.description, version.flavor)
    content["sections"] = {k: v for k, v in content["sections"].items() if k not in leave_out}
    return card_services.card_update(
        actor=Actor.system("cli", user=users["alice"]), card=card, changes=content
    )


def _approve_card(users: dict[str, User], version: ModelVersion) -> None:
    """Alice writes the card, the reviewers approve it as the model's policy requires."""
    alice = Actor.system("cli", user=users["alice"])
    card = card_services.card_submit(actor=alice, card=_write_card(users, version))
    for reviewer in ("carol", "dave", "admin"):
        if card.status == ModelCard.Status.APPROVED:
            break
        card = card_services.card_review(
            actor=Actor.system("cli", user=users[reviewer]),
            card=card,
            decision="approve",
            comment="Complete.",
        )


def _promote(
    users: dict[str, User],
    version: ModelVersion,
    target: str = "",
    alias: str = "",
    *,
    card: bool = True,
) -> None:
    """Bob asks, the reviewers (and the administrator, where the policy wants one) approve;
    with `card`, the version's model card is approved first."""
    if card and ModelCard.objects.get(version=version).status != ModelCard.Status.APPROVED:
        _approve_card(users, version)
    request = promotions.promotion_request_create(
        actor=Actor.system("cli", user=users["bob"]),
        version=version,
        target_stage=target,
        target_alias=alias,
        justification=f"Version {version.version} beats the current one on the hold-out set.",
    )
    for reviewer in ("carol", "dave", "admin"):
        request.refresh_from_db()
        if request.status != PromotionRequest.Status.PENDING:
            break
        promotions.promotion_request_review(
            actor=Actor.system("cli", user=users[reviewer]),
            promotion_request=request,
            decision="approve",
            comment="Looks good.",
        )


def _push(users: dict[str, User], version: ModelVersion) -> None:
    """Straight into production, past review: an administrator gave the model a policy of its
    own needing no approval and no checks, bob moved the version, the override was removed
    again. The stage
    history keeps the move without a request (the scorecard notices)."""
    admin = Actor.system("cli", user=users["admin"])
    override = policies.policy_override_set(
        actor=admin,
        registered_model=version.registered_model,
        production_approvals=0,
        admin_approval_required=False,
        required_checks=[],
    )
    services.version_stage_set(
        actor=Actor.system("cli", user=users["bob"]),
        version=version,
        stage=ModelVersion.Stage.PRODUCTION,
        archive_existing=True,
    )
    policies.policy_delete(actor=admin, policy=override)


def _stage_versions(
    users: dict[str, User], registered_model: RegisteredModel, n_versions: int, profile: Profile
) -> None:
    """Every version but the newest went through production in turn (so the older ones are
    archived), deployed as the profile's rollout says; the newest is in staging;
    churn-predictor's newest waits for a reviewer."""
    admin = Actor.system("cli", user=users["admin"])
    versions = {v.version: v for v in registered_model.versions.all()}
    production = n_versions - 1
    cards = profile.card == "approved"
    serving: dict[str, Deployment] = {}
    for number in range(1, production + 1):
        if number == profile.pushed:
            _push(users, versions[number])
        else:
            _promote(users, versions[number], "production", card=cards)
        for region in profile.rollout.get(number - production, ()):
            target = f"https://serving.example.com/{registered_model.name}"
            target += f"/{region}" if region else ""
            replaced = serving.get(target)
            serving[target] = services.deployment_create(
                actor=admin, version=versions[number], environment="prod", target=target
            )
            if replaced is not None:
                services.deployment_retire(actor=admin, deployment=replaced)
    _promote(users, versions[n_versions], "staging", card=cards)
    if registered_model.name == "churn-predictor":
        promotions.promotion_request_create(
            actor=Actor.system("cli", user=users["bob"]),
            version=versions[n_versions],
            target_stage="production",
            justification="Staging shadow traffic for a week: "
            "churn recall up 3 points, latency unchanged.",
        )
    # High and critical policies protect "champion": it moves through a request there.
    if policies.is_protected(policies.policy_for(registered_model), "champion"):
        _promote(users, versions[production], alias="champion", card=cards)
    else:
        services.alias_set(
            actor=admin,
            registered_model=registered_model,
            name="champion",
            version=versions[production],
        )
    services.alias_set(
        actor=admin,
        registered_model=registered_model,
        name="challenger",
        version=versions[n_versions],
    )
    if profile.staging is not None:
        services.deployment_create(
            actor=admin,
            version=versions[production + profile.staging],
            environment="staging",
            target=f"https://staging.serving.example.com/{registered_model.name}",
        )


def _govern(
    users: dict[str, User], registered_model: RegisteredModel, n_versions: int, profile: Profile
) -> None:
    """What happened after the rollout: a revised card sent back to review, access reviews,
    an owner removed."""
    admin = Actor.system("cli", user=users["admin"])
    alice = Actor.system("cli", user=users["alice"])
    if profile.card_revised:
        card = ModelCard.objects.select_related("registered_model").get(
            version__registered_model=registered_model, version__version=n_versions - 1
        )
        card = card_services.card_update(
            actor=alice,
            card=card,
            changes={
                "sections": {
                    "performance": "After the Q4 chargeback review: recall on card-not-present "
                    "transactions is 4 points below the rest; precision unchanged."
                }
            },
            note="Q4 chargeback review",
        )
        card_services.card_submit(actor=alice, card=card)
    if profile.onnx_failed:
        # Fails before any model process starts: parity needs numeric rows.
        job, _ = services.job_start(
            actor=alice,
            version=ModelVersion.objects.get(
                registered_model=registered_model, version=n_versions - 1
            ),
            kind=PackagingJob.Kind.CONVERT_ONNX,
        )
        run_job.apply(args=[job.pk])
    if profile.access_reviewed:
        access.access_review_record(actor=admin, registered_model=registered_model)
    if profile.owner is None:
        services.registered_model_update(actor=admin, registered_model=registered_model, owner=None)
