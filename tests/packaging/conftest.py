"""What the packaging tests share: a small classification problem, its signature and input
example, and a fixture that uploads a model file to a new version and runs jobs on it through
the API with tasks run eagerly."""

from __future__ import annotations

import io
import pickle

import joblib
import pytest
import skops.io
from sklearn.datasets import make_classification

from tests.factories import actor_for, make_model, make_version

V = "/api/v1/models/churn/versions/1/"
X, Y = make_classification(n_samples=200, n_features=4, random_state=1)
COLUMNS = ["a", "b", "c", "d"]
SIGNATURE = {
    "inputs": [{"name": c, "type": "double"} for c in COLUMNS],
    "outputs": [{"name": "label", "type": "long"}],
}
EXAMPLE = [dict(zip(COLUMNS, row, strict=True)) for row in X[:20].tolist()]


def dump(obj, fmt: str, tmp_path) -> bytes:
    if fmt == "skops":
        path = tmp_path / "m.skops"
        skops.io.dump(obj, path)
        return path.read_bytes()
    buffer = io.BytesIO()
    joblib.dump(obj, buffer) if fmt == "joblib" else pickle.dump(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def setup(api, data_scientist, django_capture_on_commit_callbacks):
    """Upload `data` to a new version and return a client and a function that runs a job."""

    def make(data: bytes, filename: str, **fields):
        fields.setdefault("signature", SIGNATURE)
        fields.setdefault("input_example", EXAMPLE)
        make_version(data_scientist, make_model(data_scientist, "churn"), **fields)
        client = api(data_scientist)
        with django_capture_on_commit_callbacks(execute=True):
            r = client.post(
                f"{V}artifacts/?filename={filename}",
                data=data,
                content_type="application/octet-stream",
            )
        assert r.status_code == 201, r.content

        def run(kind: str, **body):
            with django_capture_on_commit_callbacks(execute=True):
                r = client.post(f"{V}jobs/", {"kind": kind, **body}, format="json")
            assert r.status_code in (200, 201), r.json()
            return client.get(f"{V}jobs/{r.json()['id']}/").json()

        return client, run

    return make


def packaging_check(user):
    from governance import promotions
    from registry.models import ModelVersion

    request = promotions.promotion_request_create(
        actor=actor_for(user), version=ModelVersion.objects.get(), target_stage="staging"
    )
    check = next(c for c in promotions.evaluate(request).checks if c.name == "packaging")
    request.delete()
    return check
