"""The demo data tells the stories issue 15 asks for: a lineage graph where datasets are shared
across models, and a maturity scorecard with missing, partial and complete answers in every
domain (config/demo.py, PROFILES)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from governance.maturity import scorecard
from governance.maturity.catalogue import BUCKETS, DOMAIN_KEYS
from registry import lineage_graph
from registry.models import CodeRef, Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db: None) -> dict[str, User]:
    call_command("demo", "--no-serve", stdout=io.StringIO())
    return {u.username: u for u in User.objects.filter(username__in=["admin", "olivia"])}


def test_every_domain_of_the_demo_scorecard_has_missing_partial_and_complete_answers(
    demo: dict[str, User], api: Callable[[User | None], APIClient]
) -> None:
    card = scorecard.scorecard_for(demo["admin"])
    assert card.organisation.models == 6
    for domain in DOMAIN_KEYS:
        counts = card.organisation.domains[domain].counts
        assert all(counts[bucket] >= 1 for bucket in BUCKETS), (domain, counts)
    # No model is perfect or hopeless on its own: the spread comes from several of them.
    scores = [model.score for model in card.models]
    assert len(set(scores)) >= 4 and all(0 < s < 1 for s in scores if s is not None)
    # The API answers the same organisation distribution.
    r = api(demo["admin"]).get("/api/v1/scorecard/")
    assert r.status_code == 200, r.json()
    domains = r.json()["organisation"]["domains"]
    for domain in DOMAIN_KEYS:
        assert all(domains[domain][key] >= 1 for key in ("missing", "partial", "complete"))


def test_a_shared_dataset_leads_to_versions_of_several_models(demo: dict[str, User]) -> None:
    admin = demo["admin"]
    shared = Dataset.objects.get(name="customer-profile", version="2026-10")
    drawn = lineage_graph.graph(admin, "dataset", shared.pk)
    versions = [n for n in drawn.nodes.values() if n.kind == "version"]
    assert len({n.attributes["model"] for n in versions}) >= 2
    # Upstream its features and their sources; downstream runs, versions, deployments.
    kinds = {n.kind for n in drawn.nodes.values()}
    assert {"source", "feature", "run", "version", "deployment"} <= kinds
    found = lineage_graph.impact(admin, "dataset", shared.pk)
    models = {r.facts["model"] for r in found.results}
    assert len(models) >= 2, models
    assert found.summary["in_production"] >= 2 and found.summary["deployed"] >= 2
    for result in found.results:  # each path runs from the dataset through a run to the version
        assert [n.kind for n in result.path] == ["dataset", "run", "version"]
        assert result.path[0].pk == shared.pk
    # Its other version (2026-09) trained the older versions of the same models.
    every = lineage_graph.impact(admin, "dataset", shared.pk, all_versions=True)
    assert len(every.starts) == 2 and len(every.results) > len(found.results)
    assert {r.facts["model"] for r in every.results} == models
    # A code reference is shared the same way, by runs of two models.
    code = CodeRef.objects.get(commit__startswith="8d41e0c", path="train.py")
    found = lineage_graph.impact(admin, "code", code.pk)
    assert {"credit-risk-classifier", "fraud-detector"} <= {r.facts["model"] for r in found.results}


def test_the_demo_outsider_sees_only_her_model_in_a_shared_dataset_s_impact(
    demo: dict[str, User],
) -> None:
    shared = Dataset.objects.get(name="customer-profile", version="2026-10")
    found = lineage_graph.impact(demo["olivia"], "dataset", shared.pk)
    assert {r.facts["model"] for r in found.results} == {"churn-predictor"}
    assert found.summary["versions"] == len(found.results) > 0
