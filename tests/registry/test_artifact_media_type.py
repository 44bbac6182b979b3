"""The media type stored for an upload describes the file, not how the request was encoded
(issue 12: the README's curl upload stored application/x-www-form-urlencoded)."""

from __future__ import annotations

import pytest

from registry.models import Artifact
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db
V = "/api/v1/models/m/versions/1"


@pytest.fixture
def client(api, data_scientist):
    make_version(data_scientist, make_model(data_scientist, "m"))
    return api(data_scientist)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",  # curl --data-binary without -H Content-Type
        "application/x-www-form-urlencoded; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
    ],
)
@pytest.mark.parametrize(
    "filename,data,expected",
    [
        ("iris.joblib", b"\x80\x04\x95joblib-ish", "application/octet-stream"),
        ("labels.json", b'{"0": "setosa"}', "application/json"),
        ("forest.onnx", b"\x08\x07onnx-ish", "application/onnx"),
    ],
)
def test_a_form_encoding_is_never_stored_as_the_files_media_type(
    client, content_type, filename, data, expected
):
    r = client.post(f"{V}/artifacts/?filename={filename}", data=data, content_type=content_type)
    assert r.status_code == 201, r.content
    assert r.json()["media_type"] == expected
    assert Artifact.objects.get().media_type == expected
    download = client.get(f"{V}/artifacts/{r.json()['id']}/download/")
    assert download["Content-Type"] == expected


@pytest.mark.parametrize(
    "content_type,expected",
    [
        ("application/zip", "application/zip"),
        ("Application/Octet-Stream; q=1", "application/octet-stream"),
        ("not a type", "application/octet-stream"),
    ],
)
def test_a_declared_file_type_is_kept(client, content_type, expected):
    r = client.post(
        f"{V}/artifacts/?filename=model.bin", data=b"\x00\x01\x02", content_type=content_type
    )
    assert r.status_code == 201, r.content
    assert r.json()["media_type"] == expected
