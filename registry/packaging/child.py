"""Runs in a separate, limited process: load a model, and convert it to ONNX and compare
predictions, predict, time it in every format, re-save it for a bundle, or validate a
TorchScript file. Never imported by the web process.

    python -m registry.packaging.child    (started by registry/packaging/sandbox.py)

It runs as a *zygote*: started once per worker process with an environment holding no
database URL or secret, it imports scikit-learn, skl2onnx and onnxruntime once, then forks a
process per job (so a job does not pay seconds of imports). Each job's WORKDIR holds
``model.bin`` (the artifact), ``rows.json`` (input rows) and ``job.json`` (format and mode);
the forked process writes its files and ``result.json`` or ``error.json``. It has a memory and
CPU-time limit, a session of its own, and WORKDIR as its working directory. Pickle and
joblib load through an unpickler that resolves only the imports the scanner allows, even
after the scan passed (defence in depth); skops loads with an explicit trusted-types list
built from the same allow-list.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
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


class Loaded:
    """A loaded model and the skops types it was trusted with (empty for pickles)."""

    def __init__(self, model: Any, trusted_types: list[str]) -> None:
        self.model, self.trusted_types = model, trusted_types


def load_any(path: Path, fmt: str, trusted: bool) -> Loaded:
    if fmt == "skops":
        import skops.io

        needed = skops.io.get_untrusted_types(file=path)
        refused = [t for t in needed if not trusted and not _allowed(*t.rpartition(".")[::2])]
        if refused:
            raise pickle.UnpicklingError(f"refusing to trust {', '.join(refused)}")
        return Loaded(skops.io.load(path, trusted=needed), needed)
    return Loaded(load(path, fmt, trusted), [])


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


def _estimator(workdir: Path, job: dict[str, Any]) -> Loaded:
    from sklearn.base import BaseEstimator

    loaded = load_any(workdir / "model.bin", job["format"], job.get("trusted", False))
    if not isinstance(loaded.model, BaseEstimator):
        raise ValueError(f"The file holds a {type(loaded.model).__name__}, not a scikit-learn "
                         "model.")
    return loaded


def _rows(workdir: Path, dtype: Any) -> Any:
    import numpy as np

    rows = np.asarray(json.loads((workdir / "rows.json").read_text()), dtype=dtype)
    if rows.ndim != 2 or not len(rows):
        raise ValueError("The input rows must be a non-empty table of numbers.")
    return rows


def _to_onnx(model: Any, rows: Any, opset: int | None = None) -> Any:
    from skl2onnx import to_onnx

    try:
        return to_onnx(model, rows[:1], target_opset=opset,
                       options={id(model): {"zipmap": False}} if hasattr(
                           model, "predict_proba") else None)
    except Exception as exc:  # noqa: BLE001 - the converter's message is the useful part
        raise ValueError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None


def _session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def versions() -> dict[str, str]:
    """Versions of what a model file needs to load, for the bundle's requirements."""
    from importlib import metadata

    found = {}
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "skops", "onnx", "onnxruntime",
                 "skl2onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def convert(workdir: Path) -> dict[str, Any]:
    import numpy as np
    import onnx

    job = json.loads((workdir / "job.json").read_text())
    started = time.perf_counter()
    loaded = _estimator(workdir, job)
    model = loaded.model
    rows = _rows(workdir, np.float32)
    onx = _to_onnx(model, rows, job.get("opset"))
    onnx.checker.check_model(onx)
    (workdir / "model.onnx").write_bytes(onx.SerializeToString())
    session = _session(workdir / "model.onnx")
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
            "trusted_types": loaded.trusted_types, "versions": versions(),
            "seconds": round(time.perf_counter() - started, 3)}


def predict(workdir: Path) -> dict[str, Any]:
    """Only run the model on the rows and describe its output (for signature inference)."""
    import numpy as np

    job = json.loads((workdir / "job.json").read_text())
    model = _estimator(workdir, job).model
    output = np.asarray(model.predict(_rows(workdir, np.float64)))
    kind = {"b": "boolean", "i": "long", "u": "long", "f": "double"}.get(output.dtype.kind,
                                                                         "string")
    return {"estimator": type(model).__name__, "output_type": kind,
            "output_columns": 1 if output.ndim == 1 else int(output.shape[1])}


def _best_ms(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 3)


def compare(workdir: Path) -> dict[str, Any]:
    """Size, save, load and inference time of the model as pickle, joblib, skops and ONNX.
    Every file timed here was written by this process from the model it already loaded."""
    import joblib
    import numpy as np

    job = json.loads((workdir / "job.json").read_text())
    model = _estimator(workdir, job).model
    rows = _rows(workdir, np.float32)
    out = workdir / "formats"
    out.mkdir()

    def pickle_save(path: Path) -> None:
        path.write_bytes(pickle.dumps(model, protocol=5))

    def skops_save(path: Path) -> None:
        import skops.io

        skops.io.dump(model, path)

    def skops_load(path: Path) -> Any:
        import skops.io

        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))

    def onnx_save(path: Path) -> None:
        path.write_bytes(_to_onnx(model, rows).SerializeToString())

    def onnx_predict(session: Any) -> Any:
        return session.run(None, {session.get_inputs()[0].name: rows})

    formats = [
        ("pickle", pickle_save, lambda p: pickle.loads(p.read_bytes()),
         lambda m: m.predict(rows)),
        ("joblib", lambda p: joblib.dump(model, p), joblib.load, lambda m: m.predict(rows)),
        ("skops", skops_save, skops_load, lambda m: m.predict(rows)),
        ("onnx", onnx_save, _session, onnx_predict),
    ]
    table = []
    for name, save, load_file, run in formats:
        path = out / f"model.{name}"
        row: dict[str, Any] = {"format": name}
        try:
            row["save_ms"] = _best_ms(lambda save=save, path=path: save(path), 3)
            row["size"] = path.stat().st_size
            row["load_ms"] = _best_ms(lambda load_file=load_file, path=path: load_file(path), 3)
            loaded = load_file(path)
            row["predict_ms"] = _best_ms(lambda run=run, loaded=loaded: run(loaded))
        except ImportError as exc:
            row["error"] = f"{exc.name or exc} is not installed on this worker"
        except Exception as exc:  # noqa: BLE001 - one format failing is a row, not the job
            row["error"] = str(exc)[:500]
        table.append(row)
    return {"estimator": type(model).__name__, "rows": int(len(rows)), "formats": table,
            "versions": versions()}


def package(workdir: Path) -> dict[str, Any]:
    """Check the model loads and predicts, and write it the way MLflow's sklearn flavor loads
    it: pickle and skops files as they are, joblib files re-saved as a plain pickle."""
    import numpy as np

    job = json.loads((workdir / "job.json").read_text())
    loaded = _estimator(workdir, job)
    model = loaded.model
    if job["format"] == "skops":
        (workdir / "model.bin").rename(workdir / "model.skops")
    elif job["format"] == "pickle":
        (workdir / "model.bin").rename(workdir / "model.pkl")
    else:
        (workdir / "model.pkl").write_bytes(pickle.dumps(model, protocol=4))
    output = np.asarray(model.predict(_rows(workdir, np.float64)))
    return {"estimator": type(model).__name__, "trusted_types": loaded.trusted_types,
            "predicts": list(output.shape), "versions": versions(),
            "has_predict_proba": hasattr(model, "predict_proba")}


def torchscript(workdir: Path) -> dict[str, Any]:
    """Load a TorchScript archive on the CPU and run it on the rows."""
    import torch

    module = torch.jit.load(str(workdir / "model.bin"), map_location="cpu")
    module.eval()
    rows = torch.tensor(json.loads((workdir / "rows.json").read_text()), dtype=torch.float32)
    with torch.no_grad():
        output = module(rows)
    tensor = output[0] if isinstance(output, tuple | list) else output
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"The module returned a {type(tensor).__name__}, not a tensor.")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("The module returned values that are not finite.")
    return {"torch": torch.__version__, "input_shape": list(rows.shape),
            "output_shape": list(tensor.shape), "output_dtype": str(tensor.dtype).replace(
                "torch.", ""), "methods": sorted(m for m in ("forward",) if hasattr(module, m))}


MODES = {"convert": convert, "predict": predict, "compare": compare, "package": package,
         "torchscript": torchscript}


def run(workdir: Path) -> int:
    """Run the job described in WORKDIR/job.json; write result.json or error.json."""
    mode = json.loads((workdir / "job.json").read_text()).get("mode", "convert")
    try:
        result = MODES[mode](workdir)
    except MemoryError:
        (workdir / "error.json").write_text(json.dumps({"error": "The model needs more "
                                                        "memory than the conversion limit."}))
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the job, not raised
        (workdir / "error.json").write_text(json.dumps({"error": str(exc)[:2000]}))
        return 1
    (workdir / "result.json").write_text(json.dumps(result))
    return 0


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Linux: send this process `signum` when its parent dies, so a killed worker leaves
    nothing running on its own."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _preload() -> None:
    """Import what jobs need once, so each job's process starts warm (PyTorch is left to the
    jobs that need it: it is large and optional)."""
    for name in ("numpy", "scipy.sparse", "joblib", "sklearn.ensemble", "sklearn.linear_model",
                 "sklearn.pipeline", "sklearn.preprocessing", "skl2onnx", "onnx", "onnxruntime",
                 "skops.io"):
        with contextlib.suppress(ImportError):
            __import__(name)


def _job_process(request: dict[str, Any]) -> int:
    """In the forked process: a session of its own, dies with the zygote, memory and CPU
    limits, the work directory as cwd and home, stdin and stdout away from the protocol."""
    import resource

    os.setsid()
    die_with_parent()
    workdir = Path(request["workdir"])
    memory, cpu = int(request["memory"]), int(request["cpu"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    os.chdir(workdir)
    os.environ["HOME"] = str(workdir)
    output = os.open(workdir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    return run(workdir)


def serve() -> int:
    """The zygote: started once per worker process with a clean environment, it imports the
    libraries, then forks one limited process per request line on stdin ({"workdir", "memory",
    "cpu"}), answering {"pid"} when it started and {"pid", "exit"} when it ended."""
    die_with_parent()
    _preload()
    protocol = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _job_process(request)
            finally:
                os._exit(code)
        protocol.write(json.dumps({"pid": pid}) + "\n")
        protocol.flush()
        _, status = os.waitpid(pid, 0)
        protocol.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) +
                       "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
