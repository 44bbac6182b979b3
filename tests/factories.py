"""Factories for plain rows; anything with invariants (numbers, grants, audit) goes through
the services via the builders below."""

from __future__ import annotations

import io
import pickle
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.test import TestCase

from core.actors import Actor
from registry import services
from registry.models import Artifact, ModelVersion, RegisteredModel
from registry.services.artifacts import read_chunks


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group{n}")


SIGNATURE = {
    "inputs": [
        {"name": "age", "type": "long"},
        {"name": "income", "type": "double"},
        {"name": "region", "type": "string"},
    ],
    "outputs": [{"name": "score", "type": "double"}],
}


def actor_for(user: User, channel: str = "api") -> Actor:
    return Actor(user=user, channel=channel)


def make_model(user: User, name: str = "credit-risk", **kwargs: Any) -> RegisteredModel:
    return services.registered_model_create(actor=actor_for(user), name=name, **kwargs)


def make_version(user: User, registered_model: RegisteredModel, **kwargs: Any) -> ModelVersion:
    kwargs.setdefault("metrics", {"auc": 0.9})
    kwargs.setdefault("params", {"max_depth": 4})
    version, _ = services.version_create(
        actor=actor_for(user), registered_model=registered_model, **kwargs
    )
    return version


def make_artifact(
    user: User,
    version: ModelVersion,
    data: bytes = b"\x80\x04K\x01.",
    filename: str = "model.pkl",
    inspect: bool = True,
) -> Artifact:
    """Upload a file; with `inspect`, its inspection job runs too (the worker's on-commit
    work, run here in-process), as readiness only passes on inspected files."""
    with TestCase.captureOnCommitCallbacks(execute=inspect):
        return services.artifact_upload(
            actor=actor_for(user),
            version=version,
            filename=filename,
            chunks=read_chunks(io.BytesIO(data)),
        )


def superuser() -> User:
    return User.objects.filter(username="root").first() or User.objects.create_superuser(
        "root", "root@example.com", "pw"
    )


def no_approval(registered_model: RegisteredModel, **fields: Any) -> None:
    """Give the model a policy under which stages and protected aliases move directly: no
    approvals, no administrator's approval and, unless `fields` name some, no readiness checks
    (a direct move still needs the checks its policy requires)."""
    from governance import policies

    fields.setdefault("required_checks", [])
    fields.setdefault("admin_approval_required", False)
    policies.policy_override_set(
        actor=actor_for(superuser()),
        registered_model=registered_model,
        production_approvals=0,
        staging_approvals=0,
        **fields,
    )


def gate(registered_model: RegisteredModel) -> None:
    """Give the model a policy under which staging, production and the alias `champion` each
    need one approval, whatever the database's default policies (transactional tests flush
    the ones migrations create)."""
    from governance import policies

    policies.policy_override_set(
        actor=actor_for(superuser()),
        registered_model=registered_model,
        production_approvals=1,
        staging_approvals=1,
        protected_aliases=["champion"],
    )


def place(version: ModelVersion, stage: str, *, archive_existing: bool = False) -> ModelVersion:
    """Put a version in a stage as an administrator would under a no-approval policy: for
    tests about what happens to versions in a stage, not about how they got there."""
    no_approval(version.registered_model)
    return services.version_stage_set(
        actor=actor_for(superuser()),
        version=version,
        stage=stage,
        archive_existing=archive_existing,
    )


FULL_CARD = {
    "model_details": {
        "authors": ["Alice"],
        "model_type": "classifier",
        "architecture": "gradient-boosted trees",
    },
    "sections": {
        key: f"Written {key.replace('_', ' ')}."
        for key in (
            "intended_use",
            "out_of_scope",
            "training_data",
            "evaluation_data",
            "performance",
            "limitations",
            "bias_fairness",
            "ethical_considerations",
            "recommendations",
            "caveats",
        )
    },
}


def approve_card(version: ModelVersion) -> Any:
    """Write every section of the version's card, submit it, and have enough administrators
    approve it for any policy: for tests about what an approved card allows."""
    from cards import services as card_services
    from cards.models import ModelCard

    card = ModelCard.objects.get(version=version)
    # A writer of its own: card authors may not approve the version's promotions.
    writer = User.objects.filter(username="card-writer").first() or User.objects.create_superuser(
        "card-writer", "", "pw"
    )
    editor = actor_for(writer)
    card = card_services.card_update(actor=editor, card=card, changes=FULL_CARD)
    card = card_services.card_submit(actor=editor, card=card)
    for i in range(3):
        if card.status == ModelCard.Status.APPROVED:
            break
        reviewer = User.objects.filter(
            username=f"card-reviewer-{i}"
        ).first() or User.objects.create_superuser(f"card-reviewer-{i}", "", "pw")
        card = card_services.card_review(actor=actor_for(reviewer), card=card, decision="approve")
    return card


def ready_version(author: User, registered_model: RegisteredModel, **kwargs: Any) -> ModelVersion:
    """A version every default readiness check accepts: a signature, an inspected file and
    an approved card."""
    kwargs.setdefault("signature", SIGNATURE)
    version = make_version(author, registered_model, **kwargs)
    make_artifact(author, version, data=pickle.dumps(f"weights {version.version}"))
    approve_card(version)
    return version


def reviewer_named(roles: dict[str, Group], username: str) -> User:
    """A user in the reviewer role."""
    user = UserFactory(username=username)
    user.groups.add(roles["reviewer"])
    return user
