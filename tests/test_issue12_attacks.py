"""Issue 12 attacks (second review). test_attack_* failed against the code when written (each
was a defect); test_sound_* are probes that found nothing, kept as regression checks. The two
webhook attacks (a non-HTTP answer, a dripping receiver) live in
tests/governance/test_webhook_targets.py with their fix."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db

HUGE = "9" * 40


@pytest.fixture
def scorer(admin_user):
    registered_model = make_model(admin_user, "scorer")
    make_version(admin_user, registered_model)
    make_version(admin_user, registered_model)
    return registered_model


def _page(admin_user) -> Client:
    c = Client(raise_request_exception=False)
    c.force_login(admin_user)
    return c


@pytest.mark.parametrize(
    "path",
    [
        # str.isdigit() accepts '²' (and other digits int() refuses): a ValueError, a 500.
        "/models/scorer/compare/?v=%C2%B2",  # registry/views.py compare
        "/models/scorer/compare/?v=1&v=%C2%B2",
        "/requests/new/checks/?model=scorer&version=%C2%B2",  # governance/views.py
        "/requests/new/?model=scorer&version=%C2%B2",
    ],
)
def test_attack_superscript_digits_in_page_parameters_are_not_500(scorer, admin_user, path):
    r = _page(admin_user).get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])


@pytest.mark.parametrize(
    "path",
    [
        f"/requests/new/checks/?model=scorer&version={HUGE}",
        f"/requests/new/?model=scorer&version={HUGE}",
    ],
)
def test_sound_huge_versions_in_request_pages(scorer, admin_user, path):
    r = _page(admin_user).get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])


def test_sound_request_new_post_huge_version_is_not_500(scorer, admin_user):
    r = _page(admin_user).post(
        "/requests/new/",
        {"model": "scorer", "version": HUGE, "target": "production", "justification": "x"},
    )
    assert r.status_code < 500, (r.status_code, r.content[:300])


def _multipart(parts: list[tuple[str, dict[str, str], bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, headers, data in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if "filename" in headers:
            disposition += f'; filename="{headers.pop("filename")}"'
        out += f"Content-Disposition: {disposition}\r\n".encode("latin-1")
        for key, value in headers.items():
            out += f"{key}: {value}\r\n".encode("latin-1")
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("media_type", ["application/x\ry", "application/x\x00y"])
def test_attack_a_multipart_part_media_type_with_control_characters_is_refused(
    scorer, admin_user, api, media_type
):
    """The part's own Content-Type header is stored as the artifact's media type. A lone CR
    survives Django's multipart parser; every later download then sends it as a response
    header (BadHeaderError, a 500 for every reader); a NUL is a 500 on PostgreSQL at once."""
    from registry.models import Artifact

    body = _multipart(
        [("file", {"filename": "model.bin", "Content-Type": media_type}, b"\x00\x01weights")]
    )
    c = api(admin_user)
    r = c.generic(
        "POST",
        "/api/v1/models/scorer/versions/1/artifacts/",
        body,
        content_type="multipart/form-data; boundary=XyZ",
    )
    if r.status_code == 201:
        stored = Artifact.objects.get().media_type
        download = Client(raise_request_exception=False)
        download.force_login(admin_user)
        got = download.get(f"/api/v1/models/scorer/versions/1/artifacts/{r.json()['id']}/download/")
        assert got.status_code < 500 and not any(ord(ch) < 32 for ch in stored), (
            got.status_code,
            stored,
        )
    else:
        assert 400 <= r.status_code < 500, (r.status_code, r.content[:300])


def test_attack_nul_in_a_multipart_page_form_is_refused(scorer, admin_user):
    """The edge checks urlencoded page forms for NUL; the same form sent as multipart reaches
    the service (PostgreSQL: a 500)."""
    from governance.models import PromotionRequest

    c = _page(admin_user)
    body = _multipart(
        [
            ("model", {}, b"scorer"),
            ("version", {}, b"1"),
            ("target", {}, b"staging"),
            ("justification", {}, b"why\x00not"),
        ]
    )
    r = c.generic("POST", "/requests/new/", body, content_type="multipart/form-data; boundary=XyZ")
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:300])
    assert not PromotionRequest.objects.exists()  # (a NUL in a query is itself refused there)


# --- Probes that found nothing (test_sound_*; kept as cheap regression checks) -------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/schema/",
        "/api/schema/?format=json",
        "/api/docs/",
        "/api/docs/?script=",
        "/api/schema/?lang=en",
    ],
)
def test_sound_schema_and_docs_are_closed_to_anonymous_visitors(db, path):
    r = Client(raise_request_exception=False).get(path)
    assert r.status_code in (302, 401, 403), (r.status_code, r.content[:200])
    assert b"openapi" not in r.content.lower() and b"swagger" not in r.content.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/models/?page=%C2%B2",
        f"/models/?page={HUGE}",
        "/models/?page=-1",
        "/models/?page=%D9%A1",
        "/audit/?page=%C2%B2",
        f"/audit/?page={HUGE}",
        "/requests/?page=%EF%BC%91",
        "/models/scorer/compare/?v=%D9%A1%D9%A2",
        "/models/scorer/compare/?versions=%C2%B2,1",
        "/models/scorer/?at=%C2%B2",
        "/models/scorer/?at=2026-01-01T00:00:00%2B23:59",
        "/models/%ff%fe/",
        "/models/scorer/?at=%ff",
        "/audit/?since=%E2%80%AE2026",
        "/" + "a" * 20000,
        "/models/" + "x" * 5000 + "/",
        "/models/?q=version%20%3D%20%C2%B2",
        "/models/?q=" + "(" * 5000,
    ],
)
def test_sound_odd_page_parameters(scorer, admin_user, path):
    r = _page(admin_user).get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/?ordering=%C2%B2",
        "/api/v1/models/?cursor=%ff%00",
        "/api/v1/models/?cursor=zz",
        f"/api/v1/models/?page_size={HUGE}",
        "/api/v1/model-versions/?ordering=-" + "x" * 3000,
        "/api/v1/models/?q=" + "(" * 5000,
        "/api/v1/models/?q=" + "not " * 5000 + "x",
        "/api/v1/models/scorer/compare/?versions=%C2%B2",
        "/api/v1/audit/events/?since=%C2%B2",
        "/api/v1/models/scorer/history/?at=%D9%A1%D9%A2",
    ],
)
def test_sound_odd_api_parameters(scorer, admin_user, path):
    c = Client(raise_request_exception=False)
    c.force_login(admin_user)
    r = c.get(path)
    assert r.status_code < 500, (r.status_code, r.content[:300])


@pytest.mark.parametrize(
    "auth",
    [
        "Bearer mg_ab\x00cd",
        "Bearer \x00",
        "Token mg_" + "x" * 9000,
        "Bearer mg_é",
        "Basic YWRtaW46YWRtaW4=",
    ],
)
def test_sound_odd_authorization_headers(db, auth):
    r = Client(raise_request_exception=False).get("/api/v1/models/", HTTP_AUTHORIZATION=auth)
    assert r.status_code in (401, 403), (r.status_code, r.content[:200])


@pytest.mark.parametrize("key", ["a\x00b", "\u202e", "x" * 300, ""])
def test_sound_odd_idempotency_keys(scorer, admin_user, key):
    c = Client(raise_request_exception=False)
    c.force_login(admin_user)
    r = c.post(
        "/api/v1/models/scorer/versions/",
        {},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert r.status_code < 500, (r.status_code, r.content[:300])


@pytest.mark.parametrize(
    "body,ctype",
    [
        (
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.pkl"\r\n\r\nabc',
            "multipart/form-data; boundary=XyZ",
        ),
        (b"garbage", "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary="),
        (b"--XyZ\r\n\r\n--XyZ--", "multipart/form-data; boundary=XyZ"),
        (b"%zz=%ff&a=%", "application/x-www-form-urlencoded"),
    ],
)
def test_sound_malformed_bodies(scorer, admin_user, body, ctype):
    c = Client(raise_request_exception=False)
    c.force_login(admin_user)
    for path in (
        "/api/v1/models/scorer/versions/1/artifacts/",
        "/api/v1/models/",
        "/requests/new/?model=scorer",
    ):
        r = c.generic("POST", path, body, content_type=ctype)
        assert r.status_code < 500, (path, r.status_code, r.content[:300])


# --- Login throttling ----------------------------------------------------------------------


@pytest.fixture
def victim(db):
    from tests.factories import UserFactory

    user = UserFactory(username="victor")
    user.set_password("correct horse battery staple")
    user.save()
    return user


@pytest.mark.parametrize(
    "variant", [" victor", "victor ", "\uff56\uff49\uff43\uff54\uff4f\uff52", "Victor", "VICTOR"]
)
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sound_a_locked_pair_stays_locked_under_username_variants(victim, variant, path):
    c = Client()
    for n in range(5):
        c.post(
            "/login/", {"username": "victor", "password": f"guess-{n}"}, REMOTE_ADDR="203.0.113.9"
        )
    c.post(
        path,
        {"username": variant, "password": "correct horse battery staple"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert "_auth_user_id" not in c.session


def test_sound_forwarded_for_headers_do_not_give_a_fresh_address(victim):
    c = Client()
    statuses = [
        c.post(
            "/login/",
            {"username": "victor", "password": f"guess-{n}"},
            REMOTE_ADDR="203.0.113.9",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
            HTTP_X_REAL_IP=f"198.51.100.{n}",
        ).status_code
        for n in range(8)
    ]
    assert statuses[-1] == 429, statuses
