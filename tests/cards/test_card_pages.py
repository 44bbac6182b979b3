"""The card pages: read, edit with errors kept next to the fields, history and diff, review
buttons only for those who may use them, exports, and no script from a card reaches a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.models import ModelCard
from tests.factories import FULL_CARD, actor_for, make_model, make_version

pytestmark = pytest.mark.django_db
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)> [link](javascript:alert(1))'


@pytest.fixture
def version(data_scientist):
    registered_model = make_model(data_scientist, "churn", risk_tier="low")
    return make_version(data_scientist, registered_model, metrics={"auc": 0.9})


def _form(**overrides):
    form = {
        "base_revision": "1",
        "authors": "Alice, Bob",
        "model_type": "classifier",
        "architecture": "trees",
        "license": "mit",
        "languages": "en",
        "datasets": "",
        "tags": "tabular",
        "base_model": "",
        "library_name": "",
        "pipeline_tag": "",
        "note": "first draft",
    }
    form.update({f"section_{k}": v for k, v in FULL_CARD["sections"].items()})
    form.update(overrides)
    return form


def test_editor_saves_a_revision_and_the_card_page_shows_it(
    client, data_scientist, version, django_assert_max_num_queries
):
    client.force_login(data_scientist)
    url = "/models/churn/versions/1/card/"
    page = client.get(f"{url}edit/").content.decode()
    assert 'name="section_intended_use"' in page and "required" in page
    r = client.post(f"{url}edit/", _form())
    assert r.status_code == 302 and r["Location"] == url
    card = ModelCard.objects.get(version=version)
    assert card.revision == 2 and card.content["model_details"]["authors"] == ["Alice", "Bob"]
    assert card.revisions.get(number=2).note == "first draft"
    with django_assert_max_num_queries(25):
        page = client.get(url).content.decode()
    assert "Written intended use." in page and "Complete: 100%" in page
    assert "auc" in page and "Submit for review" in page


def test_a_failed_save_keeps_what_was_typed_and_shows_the_error_by_the_field(
    client, data_scientist, version
):
    client.force_login(data_scientist)
    too_long = "x" * 20_001
    r = client.post(
        "/models/churn/versions/1/card/edit/",
        _form(section_limitations=too_long, section_caveats="kept text"),
    )
    assert r.status_code == 400
    page = r.content.decode()
    assert "At most 20000 characters" in page and "kept text" in page
    assert 'aria-invalid="true"' in page
    assert ModelCard.objects.get(version=version).revision == 1
    r = client.post("/models/churn/versions/1/card/edit/", _form(base_revision="7"))
    assert r.status_code == 400 and "changed since you opened it" in r.content.decode()


def test_script_in_a_card_never_reaches_a_page(client, data_scientist, reviewer, version):
    client.force_login(data_scientist)
    client.post("/models/churn/versions/1/card/edit/", _form(section_intended_use=XSS))
    client.force_login(reviewer)
    page = client.get("/models/churn/versions/1/card/").content.decode()
    assert "<script>alert" not in page and "onerror" not in page
    assert "javascript:" not in page
    preview = client.post(
        "/api/v1/markdown/preview/", {"text": XSS}, content_type="application/json"
    ).json()["html"]
    assert "<script" not in preview and "onerror" not in preview and "javascript:" not in preview


def test_review_buttons_only_for_eligible_reviewers_and_forged_posts_refused(
    client, data_scientist, reviewer, viewer, version
):
    from cards import services

    card = ModelCard.objects.get(version=version)
    services.card_update(actor=actor_for(data_scientist), card=card, changes=FULL_CARD)
    services.card_submit(actor=actor_for(data_scientist), card=ModelCard.objects.get(pk=card.pk))
    url = "/models/churn/versions/1/card/"
    client.force_login(data_scientist)  # the author: no approve permission
    page = client.get(url).content.decode()
    assert 'value="approve"' not in page and "may not approve this model" in page
    assert client.post(f"{url}review/", {"decision": "approve"}).status_code == 403
    assert ModelCard.objects.get(pk=card.pk).status == "in_review"
    client.force_login(viewer)
    assert 'value="approve"' not in client.get(url).content.decode()
    assert client.get(f"{url}edit/").status_code == 403
    client.force_login(reviewer)
    assert 'value="approve"' in client.get(url).content.decode()
    client.post(f"{url}review/", {"decision": "approve", "comment": "fine"})
    assert ModelCard.objects.get(pk=card.pk).status == "approved"


def test_history_diff_restore_and_exports(client, data_scientist, version):
    client.force_login(data_scientist)
    url = "/models/churn/versions/1/card/"
    client.post(f"{url}edit/", _form(section_caveats="Old caveat."))
    client.post(f"{url}edit/", _form(base_revision="2", section_caveats="New caveat."))
    page = client.get(f"{url}history/", {"from": 2, "to": 3}).content.decode()
    assert '<span class="del">-Old caveat.</span>' in page
    assert '<span class="add">+New caveat.</span>' in page
    # Without a choice the page opens on the latest change (2 → 3), not on 3 against itself.
    latest = client.get(f"{url}history/").content.decode()
    assert '<span class="del">-Old caveat.</span>' in latest
    assert '<span class="add">+New caveat.</span>' in latest
    client.post(f"{url}revisions/2/restore/")
    card = ModelCard.objects.get(version=version)
    assert card.revision == 4 and card.content["sections"]["caveats"] == "Old caveat."
    hf = client.get(f"{url}export.hf")
    assert hf["Content-Disposition"] == 'attachment; filename="README.md"'
    assert b"license: mit" in hf.content
    assert client.get(f"{url}export.pdf").status_code == 404
    print_css = (Path(__file__).resolve().parents[2] / "static/css/app.css").read_text()
    assert "@media print" in print_css and ".no-print" in print_css


def test_import_form_reports_what_did_not_map(client, data_scientist, version):
    client.force_login(data_scientist)
    readme = "---\nlicense: mit\nthumbnail: x.png\n---\n## Limitations\n\nSmall.\n## Citation\n\nx"
    r = client.post("/models/churn/versions/1/card/import/", {"readme": readme}, follow=True)
    page = r.content.decode()
    assert "Imported." in page and "Metadata not mapped: thumbnail." in page
    assert "Sections not mapped: Citation." in page
    card = ModelCard.objects.get(version=version)
    assert card.content["sections"]["limitations"] == "Small." and card.revision == 2
