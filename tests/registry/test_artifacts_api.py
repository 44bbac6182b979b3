from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import TooLarge
from core.models import AuditEvent
from registry import services
from registry.models import Artifact
from registry.services.artifacts import artifact_storage, storage_key
from tests.factories import actor_for, make_artifact, make_model, make_version

pytestmark = pytest.mark.django_db
V = "/api/v1/models/m/versions/1"


@pytest.fixture
def version(data_scientist):
    return make_version(data_scientist, make_model(data_scientist, "m"))


def _raw(client, data: bytes, filename: str = "model.pkl", **extra):
    return client.post(
        f"{V}/artifacts/?filename={filename}",
        data=data,
        content_type="application/octet-stream",
        **extra,
    )


def test_raw_upload_stores_content_addressed_and_audits(api, data_scientist, version):
    data = b"\x80\x04\x95" + b"x" * 5000
    r = _raw(api(data_scientist), data)
    assert r.status_code == 201, r.content
    body = r.json()
    sha = hashlib.sha256(data).hexdigest()
    assert (body["sha256"], body["size"], body["format"]) == (sha, len(data), "pickle")
    artifact = Artifact.objects.get()
    assert artifact.storage_key == storage_key(sha) and "model" not in artifact.storage_key
    assert artifact_storage().open(artifact.storage_key).read() == data
    event = AuditEvent.objects.get(action="artifact.uploaded")
    assert event.details["sha256"] == sha
    # The same artifact rendered from the version's aggregated row matches the upload reply.
    assert api(data_scientist).get(f"{V}/").json()["artifacts"] == [body]
    assert api(data_scientist).get(f"{V}/artifacts/").json() == [body]


def test_multipart_upload(api, data_scientist, version):
    upload = SimpleUploadedFile(
        "clf.joblib", b"\x80\x04joblib-bytes", content_type="application/octet-stream"
    )
    r = api(data_scientist).post(f"{V}/artifacts/", {"file": upload}, format="multipart")
    assert r.status_code == 201, r.content
    assert (r.json()["filename"], r.json()["format"]) == ("clf.joblib", "joblib")


def test_download_streams_the_bytes_after_permission_check(api, data_scientist, outsider, version):
    data = bytes(range(256)) * 100
    artifact = make_artifact(data_scientist, version, data, "weights.bin")
    url = f"{V}/artifacts/{artifact.pk}/download/"
    r = api(data_scientist).get(url)
    assert r.status_code == 200 and r.streaming
    assert b"".join(r.streaming_content) == data
    assert r["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
    assert 'filename="weights.bin"' in r["Content-Disposition"]
    assert api(outsider).get(url).status_code == 404


@pytest.mark.parametrize(
    "filename", ["../etc/passwd", "a/b.pkl", "a\\b.pkl", "..", ".hidden", "x..y", ""]
)
def test_filenames_with_paths_or_dots_are_refused(api, data_scientist, version, filename):
    r = _raw(api(data_scientist), b"data", filename)
    assert r.status_code == 400 and r.json()["code"] == "invalid_filename"
    assert not Artifact.objects.exists()


def test_duplicate_filename_is_409(api, data_scientist, version):
    client = api(data_scientist)
    assert _raw(client, b"one").status_code == 201
    r = _raw(client, b"two")
    assert r.status_code == 409 and r.json()["code"] == "artifact_exists"


def test_oversize_declared_upload_is_413_before_reading(api, data_scientist, version, settings):
    settings.ARTIFACT_MAX_UPLOAD_SIZE = 1000
    r = _raw(api(data_scientist), b"x" * 1001)
    assert r.status_code == 413 and r.json()["code"] == "upload_too_large"
    assert r.json()["limit"] == 1000
    assert not Artifact.objects.exists()


def test_oversize_multipart_upload_is_413(api, data_scientist, version, settings):
    settings.ARTIFACT_MAX_UPLOAD_SIZE = 1000
    upload = SimpleUploadedFile("big.bin", b"x" * 5000)
    r = api(data_scientist).post(f"{V}/artifacts/", {"file": upload}, format="multipart")
    assert r.status_code == 413 and r.json()["code"] == "upload_too_large"
    assert not Artifact.objects.exists()


def test_limit_is_enforced_while_streaming(data_scientist, version, settings, tmp_path):
    """An upload without a truthful length stops as soon as it passes the limit."""
    settings.ARTIFACT_MAX_UPLOAD_SIZE = 10 * 1024
    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield b"y" * 1024

    with pytest.raises(TooLarge):
        services.artifact_upload(
            actor=actor_for(data_scientist), version=version, filename="f.bin", chunks=endless()
        )
    assert len(consumed) == 11
    assert not list((tmp_path / "spool").iterdir())
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("*"))


def test_viewer_cannot_upload(api, data_scientist, viewer, version):
    r = _raw(api(viewer), b"data")
    assert r.status_code == 403 and not Artifact.objects.exists()


def test_identical_content_shares_one_blob_until_the_last_reference_goes(
    data_scientist, admin_user, version, django_capture_on_commit_callbacks
):
    other = make_version(data_scientist, version.registered_model)
    a = make_artifact(data_scientist, version, b"same")
    b = make_artifact(data_scientist, other, b"same")
    assert a.storage_key == b.storage_key
    admin = actor_for(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        services.version_delete(actor=admin, version=other)
        services.version_purge(actor=admin, version=other)
    assert artifact_storage().exists(a.storage_key)
    with django_capture_on_commit_callbacks(execute=True):
        services.version_delete(actor=admin, version=version)
        services.version_purge(actor=admin, version=version)
    assert not artifact_storage().exists(a.storage_key)


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in names:
            zf.writestr(n, b"{}")
    return buf.getvalue()


def _safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\x00" * 4


@pytest.mark.parametrize(
    "filename,data,fmt",
    [
        ("m.pkl", b"\x80\x05\x95rest", "pickle"),
        ("m.pkl", b"(dp0\n.", "pickle"),
        ("m.joblib", b"\x80\x04rest", "joblib"),
        ("m.joblib", b"\x78\x9cdata", "joblib"),
        ("m.safetensors", _safetensors(), "safetensors"),
        ("m.skops", _zip(["schema.json", "abc.npy"]), "skops"),
        ("m.pt", _zip(["m/code/__torch__.py", "m/constants.pkl", "m/data.pkl"]), "torchscript"),
        ("m.zip", _zip(["readme.txt"]), "other"),
        ("m.onnx", b"\x08\x07\x12\x04", "onnx"),
        ("notes.txt", b"hello", "other"),
    ],
)
def test_format_is_detected_without_loading(data_scientist, version, filename, data, fmt):
    assert make_artifact(data_scientist, version, data, filename).format == fmt


def test_an_html_upload_is_served_as_a_download_never_inline(api, data_scientist, version):
    r = api(data_scientist).post(
        f"{V}/artifacts/?filename=page.html",
        data=b"<script>alert(1)</script>",
        content_type="text/html",
    )
    assert r.status_code == 201
    download = api(data_scientist).get(r.json()["download_url"])
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"


def test_session_upload_with_form_csrf_token_is_still_size_limited(
    data_scientist, version, settings
):
    """The CSRF check reads a form token from the body, so it must parse through the limit."""
    from django.middleware.csrf import _get_new_csrf_string
    from rest_framework.test import APIClient

    settings.ARTIFACT_MAX_UPLOAD_SIZE = 1000
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(data_scientist)
    token = _get_new_csrf_string()
    client.cookies["csrftoken"] = token
    big = SimpleUploadedFile("big.bin", b"x" * 5000)
    r = client.post(
        f"{V}/artifacts/", {"file": big, "csrfmiddlewaretoken": token}, format="multipart"
    )
    assert r.status_code == 413 and r.json()["code"] == "upload_too_large"
    small = SimpleUploadedFile("small.bin", b"x" * 10)
    ok = client.post(
        f"{V}/artifacts/", {"file": small, "csrfmiddlewaretoken": token}, format="multipart"
    )
    assert ok.status_code == 201, ok.content
    assert Artifact.objects.get().filename == "small.bin"


def test_a_real_safetensors_file_is_inspected_safe_and_a_truncated_one_is_not(
    data_scientist, version
):
    good = make_artifact(data_scientist, version, _safetensors(), "w.safetensors")
    bad = make_artifact(data_scientist, version, _safetensors()[:-2], "cut.safetensors")
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.format, good.safety) == ("safetensors", "safe")
    # The header promises four bytes the file does not have: not inert, not vouched for.
    assert (bad.format, bad.safety) == ("other", "suspicious")


def test_a_json_file_is_inspected_as_data_and_a_pickle_named_json_is_not(data_scientist, version):
    labels = make_artifact(data_scientist, version, b'{"0": "stay", "1": "churn"}', "labels.json")
    fake = make_artifact(data_scientist, version, b"cos\nsystem\n(S'true'\ntR.", "fake.json")
    labels.refresh_from_db()
    fake.refresh_from_db()
    assert labels.safety == "safe"
    assert fake.safety != "safe"  # not JSON: judged like any unknown file, never cleared
