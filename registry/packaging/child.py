"""Runs in a separate, limited process: load a scikit-learn model, convert it to ONNX, check
it, and compare predictions. Never imported by the web process.

    python -m registry.packaging.child WORKDIR

WORKDIR holds ``model.bin`` (the artifact), ``rows.json`` (input rows) and ``job.json``
(format); the child writes ``model.onnx`` and ``result.json`` or ``error.json``. It has no
database, no secrets in its environment, a memory and CPU-time limit, and its working
directory is WORKDIR. Loading goes through an unpickler that resolves only the imports the
scanner allows, even after the scan passed (defence in depth).
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any


def _allowed(module: str, name: str) -> bool:
    from registry.packaging.scan import classify

    return classify(f"{module}.{name}") == "allowed"


class RestrictedUnpickler(pickle.Unpickler):
    trusted = False

    def find_class(self, module: str, name: str) -> Any:
        if not self.trusted and not _allowed(module, name):
            raise pickle.UnpicklingError(f"refusing to import {module}.{name}")
        return super().find_class(module, name)


def load(path: Path, fmt: str, trusted: bool) -> Any:
    if fmt == "joblib":
        import joblib
        from joblib import numpy_pickle

        original = numpy_pickle.NumpyUnpickler.find_class

        def find_class(self: Any, module: str, name: str) -> Any:
            if not trusted and not _allowed(module, name):
                raise pickle.UnpicklingError(f"refusing to import {module}.{name}")
            return original(self, module, name)

        numpy_pickle.NumpyUnpickler.find_class = find_class  # type: ignore[method-assign]
        return joblib.load(path)
    with path.open("rb") as handle:
        unpickler = RestrictedUnpickler(handle)
        unpickler.trusted = trusted
        return unpickler.load()


def convert(workdir: Path) -> dict[str, Any]:
    import numpy as np
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from sklearn.base import BaseEstimator

    job = json.loads((workdir / "job.json").read_text())
    started = time.perf_counter()
    model = load(workdir / "model.bin", job["format"], job.get("trusted", False))
    if not isinstance(model, BaseEstimator):
        raise ValueError(f"The file holds a {type(model).__name__}, not a scikit-learn model.")
    rows = np.asarray(json.loads((workdir / "rows.json").read_text()), dtype=np.float32)
    if rows.ndim != 2 or not len(rows):
        raise ValueError("The input rows must be a non-empty table of numbers.")
    try:
        onx = to_onnx(model, rows[:1], target_opset=job.get("opset"),
                      options={id(model): {"zipmap": False}} if hasattr(
                          model, "predict_proba") else None)
    except Exception as exc:  # noqa: BLE001 - the converter's message is the useful part
        raise ValueError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None
    onnx.checker.check_model(onx)
    (workdir / "model.onnx").write_bytes(onx.SerializeToString())
    session = onnxruntime.InferenceSession(str(workdir / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: rows})
    expected = model.predict(rows)
    labels = np.asarray(outputs[0]).reshape(expected.shape)
    agreement = float(np.mean(labels == expected)) if expected.dtype.kind in "iubUSO" \
        else float(np.mean(np.isclose(labels, expected, rtol=1e-4, atol=1e-5)))
    max_diff = None
    if hasattr(model, "predict_proba") and len(outputs) > 1:
        max_diff = float(np.max(np.abs(np.asarray(outputs[1]) - model.predict_proba(rows))))
    elif expected.dtype.kind == "f":
        max_diff = float(np.max(np.abs(labels - expected)))
    return {"estimator": type(model).__name__, "rows": int(len(rows)),
            "label_agreement": agreement, "max_abs_diff": max_diff,
            "opset": max(o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")),
            "versions": {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                         "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__},
            "seconds": round(time.perf_counter() - started, 3)}


def predict(workdir: Path) -> dict[str, Any]:
    """Only run the model on the rows and describe its output (for signature inference)."""
    import numpy as np
    from sklearn.base import BaseEstimator

    job = json.loads((workdir / "job.json").read_text())
    model = load(workdir / "model.bin", job["format"], job.get("trusted", False))
    if not isinstance(model, BaseEstimator):
        raise ValueError(f"The file holds a {type(model).__name__}, not a scikit-learn model.")
    rows = np.asarray(json.loads((workdir / "rows.json").read_text()), dtype=np.float64)
    output = np.asarray(model.predict(rows))
    kind = {"b": "boolean", "i": "long", "u": "long", "f": "double"}.get(output.dtype.kind,
                                                                         "string")
    return {"estimator": type(model).__name__, "output_type": kind,
            "output_columns": 1 if output.ndim == 1 else int(output.shape[1])}


def main() -> int:
    workdir = Path(sys.argv[1])
    mode = json.loads((workdir / "job.json").read_text()).get("mode", "convert")
    try:
        result = convert(workdir) if mode == "convert" else predict(workdir)
    except MemoryError:
        (workdir / "error.json").write_text(json.dumps({"error": "The model needs more "
                                                        "memory than the conversion limit."}))
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the job, not raised
        (workdir / "error.json").write_text(json.dumps({"error": str(exc)[:2000]}))
        return 1
    (workdir / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
