"""The pickle scanner names every import without loading anything, follows joblib's inline
arrays and compression, and tells safe, suspicious and unsafe apart."""

from __future__ import annotations

import io
import os
import pickle
import tracemalloc

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.packaging.scan import classify, scan


@pytest.fixture(scope="module")
def models():
    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    return {"forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
            "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)}


def _joblib(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, **kwargs)
    return buffer.getvalue()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/modelgate-pwned",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
@pytest.mark.parametrize("which", ["forest", "pipeline"])
def test_scikit_learn_models_are_safe_in_every_joblib_form(models, which, compress):
    report = scan(io.BytesIO(_joblib(models[which], compress=compress)))
    assert report.verdict == "safe", report.as_dict()
    assert report.pickles >= 1 and report.skipped_array_bytes > 0
    assert any(name.startswith("sklearn.") for name in report.imports)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickles_of_every_protocol(models, protocol):
    report = scan(io.BytesIO(pickle.dumps(models["pipeline"], protocol=protocol)))
    assert report.verdict == "safe", report.as_dict()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_command_in_reduce_is_unsafe_and_never_runs(protocol, tmp_path):
    marker = "/tmp/modelgate-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    report = scan(io.BytesIO(pickle.dumps(Evil(), protocol=protocol)))
    assert report.verdict == "unsafe" and report.dangerous in (["posix.system"], ["nt.system"])
    assert not os.path.exists(marker)
    assert scan(io.BytesIO(pickle.dumps(EvalEvil()))).dangerous == ["builtins.eval"]


def test_unknown_imports_and_broken_streams_are_suspicious(models):
    import fractions
    assert scan(io.BytesIO(pickle.dumps(fractions.Fraction(1, 3)))).unknown == [
        "fractions.Fraction"]
    assert scan(io.BytesIO(b"definitely not a pickle")).verdict == "suspicious"
    truncated = pickle.dumps(models["forest"])[:400]
    report = scan(io.BytesIO(truncated))
    assert report.verdict == "suspicious" and "could not be followed" in report.problems[0]


def test_object_arrays_are_scanned_as_nested_pickles():
    data = _joblib({"labels": np.array(["a", Evil()], dtype=object)})
    assert scan(io.BytesIO(data)).verdict == "unsafe"


@pytest.mark.parametrize("name,kind", [
    ("sklearn.tree._tree.Tree", "allowed"), ("numpy.dtype", "allowed"),
    ("builtins.set", "allowed"), ("builtins.setattr", "dangerous"),
    ("subprocess.Popen", "dangerous"), ("os.path.join", "dangerous"),
    ("builtins.getattr", "dangerous"), ("pandas.core.frame.DataFrame", "unknown"),
    # Allowed libraries, but the parts that read or write files or fetch data are not.
    ("numpy.load", "dangerous"), ("numpy.memmap", "dangerous"),
    ("numpy.lib.npyio.savetxt", "dangerous"), ("numpy.f2py.compile", "dangerous"),
    ("sklearn.datasets.fetch_openml", "dangerous"), ("numpy.ones", "allowed"),
    ("sklearn.utils._testing.assert_no_warnings", "dangerous"),
])
def test_classification(name, kind):
    assert classify(name) == kind


def test_memory_stays_bounded_on_a_large_array():
    data = _joblib({"weights": np.zeros(8_000_000)})  # 64 MB of array bytes
    tracemalloc.start()
    report = scan(io.BytesIO(data))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.verdict == "safe" and report.skipped_array_bytes == 64_000_000
    assert peak < 8 * 1024 * 1024
