from __future__ import annotations

import pytest

from registry import search, selectors
from registry.search import SearchError
from tests.factories import make_model, make_version, place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query,position",
    [
        ("name LIKE", 9),
        ("name = 'open", 7),
        ("(name = 'a'", 11),
        ("name = 'a' AND", 14),
        ("name == 'a'", 6),
        ("name = 'a' name = 'b'", 11),
        ("= 'a'", 0),
        ("name # 'a'", 5),
        ("NOT", 3),
        ("tags. = 'x'", 6),
    ],
)
def test_syntax_errors_name_the_position(query, position):
    with pytest.raises(SearchError) as exc:
        search.parse(query)
    assert exc.value.position == position
    assert f"position {position}" in exc.value.message and exc.value.code == "invalid_search"


@pytest.mark.parametrize(
    "query,message",
    [
        ("colour = 'red'", "Unknown field 'colour'"),
        ("metrics.auc > 'high'", "compares with numbers"),
        ("tags = 'x'", "Name the tag"),
        ("metrics.auc LIKE '1%'", "LIKE does not apply"),
    ],
)
def test_semantic_errors_are_clear(data_scientist, query, message):
    with pytest.raises(SearchError, match=message):
        list(
            selectors.registered_model_list(
                user=data_scientist, filters=selectors.ModelFilters(q=query)
            )
        )


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(SearchError, match="nests too deeply"):
        search.parse("(" * 200 + "name = 'a'" + ")" * 200)


NAMES = ("a.b", "a.bc", "axb", "a*b", "a[b", "a\\b", "A.B")


@pytest.mark.parametrize(
    "pattern,matches",
    [
        ("a.b%", ["a.b", "a.bc"]),
        ("a_b", ["a.b", "axb", "a*b", "a[b", "a\\b"]),
        ("a*b", ["a*b"]),
        ("a[b", ["a[b"]),
        ("a\\\\b", ["a\\b"]),  # the query text holds a\\b: an escaped, literal backslash
        ("%", list(NAMES)),
    ],
)
def test_like_treats_only_percent_and_underscore_as_wildcards(data_scientist, pattern, matches):
    for name in NAMES:
        make_model(data_scientist, name)
    for op, expected in (("LIKE", matches), ("ILIKE", None)):
        found = selectors.registered_model_list(
            user=data_scientist, filters=selectors.ModelFilters(q=f"name {op} '{pattern}'")
        )
        if expected is not None:
            assert sorted(m.name for m in found) == sorted(expected)
        else:  # ILIKE adds the upper-case twin where the lower-case name matched
            names = sorted(m.name for m in found)
            assert ("A.B" in names) == ("a.b" in names)


@pytest.fixture
def catalog(data_scientist, reviewer):
    credit = make_model(data_scientist, "credit-risk", tags={"team": "risk"}, risk_tier="high")
    make_model(data_scientist, "Credit-Card", tags={"team": "cards"})
    churn = make_model(data_scientist, "churn", tags={"team": "growth"})
    make_version(data_scientist, credit, metrics={"auc": 0.85})
    v = make_version(data_scientist, churn, metrics={"auc": 0.93})
    place(v, "production")


@pytest.mark.parametrize(
    "query,expected",
    [
        ("name LIKE 'credit%'", ["credit-risk"]),
        ("name ILIKE 'credit%'", ["Credit-Card", "credit-risk"]),
        ("name LIKE 'c_urn'", ["churn"]),
        ("name NOT LIKE 'credit%'", ["Credit-Card", "churn"]),
        ("tags.team = 'risk' OR tags.team = 'growth'", ["churn", "credit-risk"]),
        ("tags.team != 'risk'", ["Credit-Card", "churn"]),
        ("tags.`team` IN ('cards', 'growth')", ["Credit-Card", "churn"]),
        ("metrics.auc > 0.9", ["churn"]),
        ("metrics.auc >= 0.85 AND NOT stage = 'production'", ["credit-risk"]),
        ("stage = 'production'", ["churn"]),
        ("name LIKE 'credit%' AND (tags.team = 'risk' OR metrics.auc > 0.9)", ["credit-risk"]),
        ("risk_tier = 'high' or owner = 'nobody'", ["credit-risk"]),
        ("owner = 'alice' AND NOT (risk_tier = 'high')", ["Credit-Card", "churn"]),
    ],
)
def test_model_search_semantics(data_scientist, catalog, query, expected):
    found = selectors.registered_model_list(
        user=data_scientist, filters=selectors.ModelFilters(q=query)
    )
    assert sorted(m.name for m in found) == sorted(expected)


@pytest.mark.parametrize(
    "query,expected",
    [
        ("metrics.auc < 0.9", [("credit-risk", 1)]),
        ("stage = 'production' AND version = 1", [("churn", 1)]),
        ("name = 'churn' OR status = 'failed_registration'", [("churn", 1)]),
    ],
)
def test_version_search_semantics(data_scientist, catalog, query, expected):
    found = selectors.version_list(user=data_scientist, filters=selectors.VersionFilters(q=query))
    assert [(v.registered_model.name, v.version) for v in found] == expected


def test_search_error_through_the_api_is_400_with_position(api, data_scientist):
    r = api(data_scientist).get("/api/v1/models/", {"q": "name = 'x' AND ("})
    body = r.json()
    assert r.status_code == 400 and body["code"] == "invalid_search" and body["position"] == 16
    assert "q" in body["fields"]
