"""Runs in a separate, limited process: load a model, and convert it to ONNX and compare
predictions, predict, time it in every format, re-save it for a bundle, save it as a
BentoML model, or validate a TorchScript file. Never imported by the web process.

    python -m registry.packaging.child    (started by registry/packaging/sandbox.py)

It runs as a *zygote*: started once per worker process with an environment holding no
database URL or secret, it imports scikit-learn, skl2onnx and onnxruntime once, then forks a
process per job (so a job does not pay seconds of imports). Each job's WORKDIR holds
``model.bin`` (the artifact), ``rows.json`` (input rows) and ``job.json`` (format and mode);
the forked process writes its files and ``result.json`` or ``error.json``. It has a memory and
CPU-time limit, a session of its own, and WORKDIR as its working directory. Pickle and
joblib load through an unpickler that resolves only the exact (module, name) pairs the
scanner allows (``scan.allowed``), even after the scan passed (defence in depth); skops loads
with an explicit trusted-types list checked by the same function.

Defence in depth for files an administrator trusted (``isolate``): where the kernel allows
it, the job runs in private mount, network and PID namespaces: every mount is read-only
except WORKDIR, the folder holding WORKDIR and the paths the worker names as secret (the
var folder with the SQLite file, the artifact store, the upload spool) are covered by empty
tmpfs mounts, there is no network but a loopback that is down, and the job cannot outlive
its process. When the worker runs as root the job drops to an unprivileged user
(SANDBOX_USER). Everywhere, a seccomp filter refuses socket creation (unix sockets too: a
database socket on disk is not covered by the network namespace), ptrace and new
namespaces or mounts, and a Python audit hook refuses sockets, new programs, writes outside
WORKDIR and reads of the secret paths: the last layer when namespaces are not available.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

from registry.packaging.scan import allowed, allowed_type


class RestrictedUnpickler(pickle.Unpickler):
    trusted = False

    def find_class(self, module: str, name: str) -> Any:
        if not self.trusted and not allowed(module, name):
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
        refused = [t for t in needed if not trusted and not allowed_type(t)]
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
            if not trusted and not allowed(module, name):
                raise pickle.UnpicklingError(f"refusing to import {module}.{name}")
            return original(self, module, name)

        numpy_pickle.NumpyUnpickler.find_class = find_class
        return joblib.load(path)
    with path.open("rb") as handle:
        unpickler = RestrictedUnpickler(handle)
        unpickler.trusted = trusted
        return unpickler.load()


def _estimator(workdir: Path, job: dict[str, Any]) -> Loaded:
    from sklearn.base import BaseEstimator

    loaded = load_any(workdir / "model.bin", job["format"], job.get("trusted", False))
    if not isinstance(loaded.model, BaseEstimator):
        raise ValueError(
            f"The file holds a {type(loaded.model).__name__}, not a scikit-learn model."
        )
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
        return to_onnx(
            model,
            rows[:1],
            target_opset=opset,
            options={id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None,
        )
    except Exception as exc:  # noqa: BLE001 - the converter's message is the useful part
        raise ValueError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from None


def _session(path: Path) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def versions() -> dict[str, str]:
    """Versions of what a model file needs to load, for the bundle's requirements."""
    from importlib import metadata

    found = {}
    for name in (
        "scikit-learn",
        "numpy",
        "scipy",
        "joblib",
        "skops",
        "onnx",
        "onnxruntime",
        "skl2onnx",
    ):
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
    agreement = (
        float(np.mean(labels == expected))
        if expected.dtype.kind in "iubUSO"
        else float(np.mean(np.isclose(labels, expected, rtol=1e-4, atol=1e-5)))
    )
    max_diff = None
    if hasattr(model, "predict_proba") and len(outputs) > 1:
        max_diff = float(np.max(np.abs(np.asarray(outputs[1]) - model.predict_proba(rows))))
    elif expected.dtype.kind == "f":
        max_diff = float(np.max(np.abs(labels - expected)))
    return {
        "estimator": type(model).__name__,
        "rows": int(len(rows)),
        "label_agreement": agreement,
        "max_abs_diff": max_diff,
        "opset": max(o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")),
        "trusted_types": loaded.trusted_types,
        "versions": versions(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def predict(workdir: Path) -> dict[str, Any]:
    """Only run the model on the rows and describe its output (for signature inference)."""
    import numpy as np

    job = json.loads((workdir / "job.json").read_text())
    model = _estimator(workdir, job).model
    output = np.asarray(model.predict(_rows(workdir, np.float64)))
    kind = {"b": "boolean", "i": "long", "u": "long", "f": "double"}.get(
        output.dtype.kind, "string"
    )
    return {
        "estimator": type(model).__name__,
        "output_type": kind,
        "output_columns": 1 if output.ndim == 1 else int(output.shape[1]),
    }


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
        ("pickle", pickle_save, lambda p: pickle.loads(p.read_bytes()), lambda m: m.predict(rows)),
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
    return {
        "estimator": type(model).__name__,
        "rows": int(len(rows)),
        "formats": table,
        "versions": versions(),
    }


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
    return {
        "estimator": type(model).__name__,
        "trusted_types": loaded.trusted_types,
        "predicts": list(output.shape),
        "versions": versions(),
        "has_predict_proba": hasattr(model, "predict_proba"),
    }


def _answers(model: Any, rows: Any) -> dict[str, Any]:
    import numpy as np

    found = {"predict": np.asarray(model.predict(rows))}
    if hasattr(model, "predict_proba"):
        found["predict_proba"] = np.asarray(model.predict_proba(rows))
    return found


def bentoml_model(workdir: Path) -> dict[str, Any]:
    """Save the model into a BentoML model store inside WORKDIR, export it as a .bentomodel
    archive, then delete it from the store, import the archive back and check the imported
    model answers the rows as the original does (labels equal, probabilities within 1e-9)."""
    import numpy as np

    job = json.loads((workdir / "job.json").read_text())
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    loaded = _estimator(workdir, job)
    model = loaded.model
    rows = _rows(workdir, np.float64)
    import bentoml

    spec = job["bentoml"]
    methods = ["predict", *(["predict_proba"] if hasattr(model, "predict_proba") else [])]
    saved = bentoml.sklearn.save_model(
        spec["tag"],
        model,
        signatures={m: {"batchable": True, "batch_dim": 0} for m in methods},
        labels=spec["labels"],
        metadata=spec["metadata"],
    )
    tag = str(saved.tag)
    stored = Path(bentoml.models.get(tag).path)  # `saved` names the folder it was written in
    for name, text in spec.get("files", {}).items():
        if PurePosixPath(name).name != name:
            raise ValueError(f"{name}: not a plain file name")
        (stored / name).write_text(text)
    bentoml.models.export_model(tag, str(workdir / "model.bentomodel"))
    bentoml.models.delete(tag)
    imported = bentoml.models.import_model(str(workdir / "model.bentomodel"))
    expected, answered = _answers(model, rows), _answers(bentoml.sklearn.load_model(tag), rows)
    for method, want in expected.items():
        got = answered[method]
        same = (
            np.array_equal(got, want)
            if want.dtype.kind not in "fc"
            else np.allclose(got, want, rtol=0, atol=1e-9)
        )
        if got.shape != want.shape or not same:
            raise ValueError(f"The imported BentoML model's {method} differs from the original.")
    for name, text in spec.get("files", {}).items():
        if (Path(imported.path) / name).read_text() != text:
            raise ValueError(f"The imported BentoML model lost {name}.")
    return {
        "estimator": type(model).__name__,
        "tag": str(imported.tag),
        "methods": methods,
        "rows": int(len(rows)),
        "trusted_types": loaded.trusted_types,
        "versions": {**versions(), "bentoml": bentoml.__version__},
    }


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
    return {
        "torch": torch.__version__,
        "input_shape": list(rows.shape),
        "output_shape": list(tensor.shape),
        "output_dtype": str(tensor.dtype).replace("torch.", ""),
        "methods": sorted(m for m in ("forward",) if hasattr(module, m)),
    }


MODES = {
    "convert": convert,
    "predict": predict,
    "compare": compare,
    "package": package,
    "torchscript": torchscript,
    "bentoml": bentoml_model,
}


def run(workdir: Path, isolation: dict[str, Any] | None = None) -> int:
    """Run the job described in WORKDIR/job.json; write result.json (with how the process
    was isolated) or error.json."""
    mode = json.loads((workdir / "job.json").read_text()).get("mode", "convert")
    try:
        result = MODES[mode](workdir)
    except MemoryError:
        (workdir / "error.json").write_text(
            json.dumps({"error": "The model needs more memory than the conversion limit."})
        )
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the job, not raised
        (workdir / "error.json").write_text(json.dumps({"error": str(exc)[:2000]}))
        return 1
    if isolation is not None:
        result["isolation"] = isolation
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


# --- Isolation (defence in depth for trusted files) ----------------------------------------
CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_KEPT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
}
# Syscalls the model process never needs and an escape would: sockets of any family, ptrace,
# namespaces and mounts, io_uring (which can open sockets without socket()), kernel keys.
_SECCOMP_DENY = {
    "x86_64": (
        0xC000003E,
        (
            41,
            101,
            310,
            311,
            272,
            308,
            165,
            166,
            155,
            161,
            321,
            298,
            323,
            248,
            249,
            250,
            425,
            426,
            427,
        ),
    ),
    "aarch64": (
        0xC00000B7,
        (198, 117, 270, 271, 97, 268, 40, 39, 41, 51, 280, 241, 282, 217, 218, 219, 425, 426, 427),
    ),
}


class IsolationError(Exception):
    """The job could not be isolated as configured; it does not run."""


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    libc = _libc()
    _check(
        libc.mount(
            source and source.encode(),
            target.encode(),
            fstype and fstype.encode(),
            flags,
            data and data.encode(),
        ),
        f"mount {target}",
    )


def _mounts() -> list[tuple[str, set[str]]]:
    """Mount points of this namespace with their per-mount options, deepest last."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape")  # \\040 for a space
        found.append((point, set(fields[5].split(","))))
    return found


def _in_scratch(path: Path, parent: Path) -> bool:
    """Whether `path` is the temporary folder itself or lies in one of Modelgate's scratch
    folders there (jobs' and zygotes' `modelgate-*`). Anything else under it, such as a
    virtual environment installed in /tmp, stays visible where the process needs it."""
    if path == parent:
        return True
    return path.is_relative_to(parent) and path.relative_to(parent).parts[0].startswith(
        "modelgate-"
    )


def _needed_paths(workdir: Path) -> list[Path]:
    """What the process must still see: the interpreter, its libraries and WORKDIR."""
    candidates = {
        Path(p).resolve()
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path)
        if p
    }
    scratch = workdir.resolve()
    candidates = {
        p
        for p in candidates  # not the zygote's or another job's folder
        if p.is_dir() and not _in_scratch(p, scratch.parent)
    } | {scratch}
    return sorted(
        p for p in candidates if not any(q != p and p.is_relative_to(q) for q in candidates)
    )


def _blocked_ancestor(path: Path) -> Path | None:
    """The outermost folder above `path` that other users cannot pass through."""
    for ancestor in reversed(path.parents[:-1]):  # from the top, without "/"
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def _private_mounts(workdir: Path, secret: list[str]) -> None:
    """In a fresh mount namespace: cover the folder holding WORKDIR (other jobs' scratch
    folders) and folders the dropped user could not pass through anyway with empty tmpfs,
    bind back only what the process needs, cover the secret paths, and make every mount
    read-only except WORKDIR."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    workdir = workdir.resolve()
    needed = _needed_paths(workdir)
    covers = {workdir.parent} | {a for p in needed if (a := _blocked_ancestor(p))}
    covers = {c for c in covers if c != Path("/")}
    rebind = [p for p in needed if any(p.is_relative_to(c) for c in covers)]
    handles = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in rebind}
    for cover in sorted(covers, key=lambda c: len(c.parts)):
        if cover.is_dir() and not any(cover != c and cover.is_relative_to(c) for c in covers):
            _mount("tmpfs", str(cover), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    for path in rebind:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{handles[path]}", str(path), None, MS_BIND)
        os.close(handles[path])
    for raw in secret:
        path = Path(raw)
        if path.is_dir():
            _mount(
                "tmpfs", str(path), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000"
            )
        elif path.exists():
            _mount("/dev/null", str(path), None, MS_BIND)
    for point, options in _mounts():
        if Path(point) == workdir:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY  # MS_BIND: this mount only, not the device
        flags |= sum(bit for name, bit in _KEPT_FLAGS.items() if name in options)
        try:
            _mount(None, point, None, flags)
        except OSError:
            # A mount hidden under a cover is out of reach; any other must not stay writable.
            if point == "/" or ("ro" not in options and os.path.exists(point)):
                raise


def _seccomp() -> bool:
    """Refuse the syscalls in _SECCOMP_DENY with EPERM; False where this architecture is not
    known (the audit hook still refuses sockets from Python)."""
    import ctypes
    import platform
    import struct

    arch = _SECCOMP_DENY.get(platform.machine())
    if arch is None:
        return False
    audit_arch, numbers = arch

    def op(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    deny = 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
    program = [
        op(0x20, 0, 0, 4),  # load the architecture
        op(0x15, 1, 0, audit_arch),  # ours: go on
        op(0x06, 0, 0, 0x80000000),  # another: kill the process
        op(0x20, 0, 0, 0),
    ]  # load the syscall number
    if audit_arch == 0xC000003E:
        program.append(op(0x35, len(numbers) + 1, 0, 0x40000000))  # x32 syscalls: deny
    for index, number in enumerate(numbers):
        program.append(op(0x15, len(numbers) - index, 0, number))
    program += [op(0x06, 0, 0, 0x7FFF0000), op(0x06, 0, 0, deny)]  # allow; deny
    code = b"".join(program)
    buffer = ctypes.create_string_buffer(code, len(code))

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Program(len(program), ctypes.addressof(buffer))
    libc = _libc()
    _check(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS
    _check(libc.prctl(22, 2, ctypes.byref(prog), 0, 0), "seccomp")  # SECCOMP_MODE_FILTER
    return True


_REFUSED_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "pty.spawn",
    }
)


def _audit_hook(workdir: Path, secret: list[str]) -> Any:
    """Refuse, from Python, what the kernel layers refuse too: sockets, new programs, writes
    outside WORKDIR and reads of the secret paths."""
    home = os.path.realpath(workdir)
    hidden = tuple(os.path.realpath(s) for s in secret)
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _REFUSED_EVENTS:
            raise PermissionError(f"the model process may not use {event}")
        if event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
            return
        path = os.path.realpath(os.fsdecode(args[0]))
        mode, flags = args[1] or "", args[2] or 0
        writing = any(c in str(mode) for c in "wax+") or bool(flags & writes)
        if writing and not inside(path, home) and path != os.devnull:
            raise PermissionError(f"the model process may not write {path}")
        if any(inside(path, h) for h in hidden):
            raise PermissionError(f"the model process may not read {path}")

    return hook


def _drop_to(user: str, workdir: Path) -> None:
    """Hand WORKDIR to `user` and become that user for good."""
    import pwd

    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(workdir):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise IsolationError(f"dropping to {user} could be undone")


def _as_exit_code(status: int) -> int:
    """Pass on how the namespace's first process ended (a signal re-raised on ourselves)."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def isolate(workdir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Isolate this job's process as far as this machine allows, and say how. With
    namespaces the process forks: the caller continues in the child (PID 1 of the new
    namespace) while this process waits and exits with the child's code."""
    secret = [s for s in request.get("secret", []) if s]
    done: dict[str, Any] = {"namespaces": False, "user": None, "seccomp": False, "audit_hook": True}
    root = os.geteuid() == 0
    if request.get("namespaces", True) and root:
        try:
            _check(_libc().unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
        except OSError as exc:
            done["fallback"] = f"no namespaces: {exc}"
        else:
            try:
                _private_mounts(workdir, secret)
            except OSError as exc:
                raise IsolationError(f"the private mounts failed: {exc}") from None
            pid = os.fork()
            if pid:
                _, status = os.waitpid(pid, 0)
                os._exit(_as_exit_code(status))
            die_with_parent()
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            os.chdir(workdir)  # the old cwd is the folder under the bind mount: read-only
            done["namespaces"] = True
    elif not root:
        done["fallback"] = "not root: no namespaces and no user to drop to"
    user = request.get("user") or ""
    if root and user:
        _drop_to(user, workdir)
        done["user"] = user
    elif root:
        done["fallback"] = "runs as root: SANDBOX_USER is empty"
    with contextlib.suppress(OSError):
        _check(_libc().prctl(4, 0, 0, 0, 0), "not dumpable")  # PR_SET_DUMPABLE
    try:
        done["seccomp"] = _seccomp()
    except OSError as exc:
        done["seccomp_error"] = str(exc)
    sys.addaudithook(_audit_hook(workdir, secret))
    return done


def _preload() -> None:
    """Import what jobs need once, so each job's process starts warm (PyTorch is left to the
    jobs that need it: it is large and optional)."""
    for name in (
        "numpy",
        "scipy.sparse",
        "joblib",
        "sklearn.ensemble",
        "sklearn.linear_model",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "skl2onnx",
        "onnx",
        "onnxruntime",
        "skops.io",
    ):
        with contextlib.suppress(ImportError):
            __import__(name)


def _job_process(request: dict[str, Any]) -> int:
    """In the forked process: a session of its own, dies with the zygote, memory and CPU
    limits, the work directory as cwd, home and temporary folder, stdin and stdout away from
    the protocol, then isolated (``isolate``) before anything reads the model file."""
    import resource
    import tempfile

    os.setsid()
    die_with_parent()
    workdir = Path(request["workdir"])
    memory, cpu = int(request["memory"]), int(request["cpu"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    os.chdir(workdir)
    os.environ["HOME"] = os.environ["TMPDIR"] = tempfile.tempdir = str(workdir)
    output = os.open(workdir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    try:
        isolation = isolate(workdir, request)
    except (IsolationError, OSError) as exc:
        (workdir / "error.json").write_text(
            json.dumps({"error": f"the model process could not be isolated: {exc}"[:2000]})
        )
        return 3
    return run(workdir, isolation)


def serve() -> int:
    """The zygote: started once per worker process with a clean environment, it imports the
    libraries, then forks one limited process per request line on stdin ({"workdir", "memory",
    "cpu", "user", "namespaces", "secret"}), answering {"pid"} when it started and {"pid",
    "exit"} when it ended."""
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
        protocol.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
