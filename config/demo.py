"""A realistic demo data set, created through the services so every invariant holds
(version numbers, grants, audit trail)."""

from __future__ import annotations

import io
import logging
import pickle
import random
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from cards import services as card_services
from cards.models import ModelCard
from core import permissions
from core.actors import Actor
from core.permissions import Perm
from governance import policies, promotions
from governance.models import PromotionRequest
from governance.roles import defaults_sync
from registry import services
from registry.models import ModelVersion, RegisteredModel
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


def _tiny_model_file(seed: int) -> bytes:
    """Stand-in model bytes: a pickle the server stores and hashes but never loads."""
    rng = random.Random(seed)
    return pickle.dumps(
        {"coef": [rng.random() for _ in range(64)], "intercept": rng.random()}, protocol=4
    )


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


def _load_models(users: dict[str, User]) -> None:
    alice = Actor.system("cli", user=users["alice"])
    rng = random.Random(42)
    now = timezone.now()
    teams = {
        name: Group.objects.get_or_create(name=f"team-{name}")[0]
        for name in {m[2] for m in DEMO_MODELS}
    }
    source = services.feature_source_create(
        actor=alice, name="warehouse.customers", kind="table", uri="postgres://dwh/customers"
    )
    features = [
        services.logical_feature_create(actor=alice, source=source, name=n, dtype=t)
        for n, t in _TABULAR
    ]
    code = services.code_ref_create(
        actor=alice,
        repository="git@example.com:ml/models.git",
        commit="3f9c2ab51e7d4c0a9b8f6e5d4c3b2a1908f7e6d5",
        path="train.py",
    )
    for m_i, (name, tier, team, description, flavor, n_versions, tags) in enumerate(DEMO_MODELS):
        with transaction.atomic():
            registered_model = services.registered_model_create(
                actor=alice,
                name=name,
                description=description,
                owner=users["alice"],
                team=teams[team],
                risk_tier=tier,
                tags=tags,
            )
            dataset = services.dataset_create(
                actor=alice,
                name=f"{name}-training",
                version="2026-10",
                uri=f"s3://datasets/{name}/2026-10/",
                digest=f"sha256:{rng.getrandbits(128):032x}",
                features=features,
            )
            auc = 0.70 + rng.random() * 0.05
            for n in range(1, n_versions + 1):
                auc = min(0.99, auc + rng.random() * 0.03)
                run = services.training_run_create(
                    actor=alice,
                    run_id=f"{name}-run-{n}",
                    name=f"{name} training #{n}",
                    code_ref=code,
                    datasets=[(dataset, "training")],
                    params={"max_depth": 4 + n, "learning_rate": round(0.1 / n, 4)},
                    started_at=now - timedelta(days=40 - n * 5, hours=2),
                    ended_at=now - timedelta(days=40 - n * 5),
                )
                version, _ = services.version_create(
                    actor=alice,
                    registered_model=registered_model,
                    description=f"Retrained on the {2026}-{n + 4:02d} snapshot.",
                    source=f"s3://models/{name}/{n}/",
                    run_id=run.run_id,
                    flavor=flavor,
                    training_run=run,
                    params={
                        "max_depth": 4 + n,
                        "learning_rate": round(0.1 / n, 4),
                        "n_estimators": 100 * n,
                    },
                    metrics=[
                        {
                            "name": "auc",
                            "value": round(auc, 4),
                            "dataset": dataset.name,
                            "split": "test",
                        },
                        {"name": "accuracy", "value": round(auc - 0.05, 4)},
                        {"name": "latency_ms", "value": round(8 + rng.random() * 4, 2)},
                    ],
                    signature={
                        "inputs": [{"name": c, "type": t} for c, t in _TABULAR],
                        "outputs": [{"name": "score", "type": "double"}],
                    },
                    input_example=[
                        {
                            "age": 41,
                            "income": 52000.0,
                            "debt_ratio": 0.31,
                            "employment_years": 7,
                            "region": "north",
                        }
                    ],
                    pip_requirements=["scikit-learn==1.9.0", "numpy>=2"],
                    python_version="3.11.7",
                    tags={"trained_by": "pipeline"},
                )
                artifact = services.artifact_upload(
                    actor=alice,
                    version=version,
                    filename="model.pkl",
                    chunks=read_chunks(io.BytesIO(_tiny_model_file(m_i * 100 + n))),
                )
                # Promotions need inspected files: inspect here rather than wait for the
                # worker (its queued message then finds the job done and does nothing).
                run_job.apply(args=[artifact.jobs.get(kind="inspect").pk])
            _stage_versions(users, registered_model, n_versions)
        if name == "churn-predictor":
            permissions.grant(Perm.VIEW, registered_model, user=users["olivia"])
        if name == "demand-forecaster":  # alice's own model: she may ask for its promotions
            permissions.grant(Perm.REQUEST_PROMOTION, registered_model, user=users["alice"])


def _card(name: str, description: str, flavor: str) -> dict[str, object]:
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


def _approve_card(users: dict[str, User], version: ModelVersion) -> None:
    """Alice writes the card (the first version's; later ones start from a copy), the
    reviewers approve it as the model's policy requires."""
    alice = Actor.system("cli", user=users["alice"])
    card = ModelCard.objects.select_related("registered_model").get(version=version)
    registered_model = card.registered_model
    card = card_services.card_update(
        actor=alice,
        card=card,
        changes=_card(registered_model.name, registered_model.description, version.flavor),
    )
    card = card_services.card_submit(actor=alice, card=card)
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
    users: dict[str, User], version: ModelVersion, target: str = "", alias: str = ""
) -> None:
    """Bob asks, the reviewers (and the administrator, where the policy wants one) approve."""
    if ModelCard.objects.get(version=version).status != ModelCard.Status.APPROVED:
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


def _stage_versions(
    users: dict[str, User], registered_model: RegisteredModel, n_versions: int
) -> None:
    """Every version but the newest went through production in turn (so the older ones are
    archived); the newest is in staging; churn-predictor's newest waits for a reviewer."""
    admin = Actor.system("cli", user=users["admin"])
    versions = {v.version: v for v in registered_model.versions.all()}
    production = n_versions - 1
    for number in range(1, production + 1):
        _promote(users, versions[number], "production")
    _promote(users, versions[n_versions], "staging")
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
        _promote(users, versions[production], alias="champion")
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
    services.deployment_create(
        actor=admin,
        version=versions[production],
        environment="prod",
        target=f"https://serving.example.com/{registered_model.name}",
    )
