"""The convert-to-ONNX job: refuse what the scan did not clear, run the conversion in a limited
child process (registry/packaging/child.py), check parity, store the ONNX file as a derived
artifact of the same version."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from core.actors import Actor
from core.errors import DomainError
from registry import validation
from registry.models import Artifact, PackagingJob
from registry.packaging import sandbox
from registry.packaging.inspect import JobError, input_artifact, scan_artifact
from registry.services import artifacts as artifact_services
from registry.services import jobs
from registry.services.versions import version_update

SAMPLE_ROWS = 64
STEPS = {
    "convert": "Conversion",
    "predict": "Prediction",
    "compare": "Format comparison",
    "package": "Packaging",
    "torchscript": "TorchScript validation",
    "bentoml": "BentoML packaging",
}
LOADABLE = (Artifact.Format.PICKLE, Artifact.Format.JOBLIB, Artifact.Format.SKOPS)


def rows_for(job: PackagingJob) -> list[list[float]]:
    """Rows to compare predictions on: the version's input example, else rows generated from
    its signature's numeric columns."""
    version = job.version
    signature = version.signature or {}
    columns = [c.get("name") for c in signature.get("inputs", []) if isinstance(c, dict)]
    example = version.input_example
    if example is not None:
        records = example if isinstance(example, list) else [example]
        rows: list[list[Any]] = []  # float() below refuses what is not a number
        for record in records:
            if isinstance(record, dict):
                rows.append([record.get(c) for c in columns] if columns else list(record.values()))
            elif isinstance(record, list):
                rows.append(record)
        try:
            return [[float(v) for v in row] for row in rows]
        except (TypeError, ValueError):
            raise JobError(
                "The input example has non-numeric values; ONNX parity needs numbers."
            ) from None
    numeric = [
        c
        for c in signature.get("inputs", [])
        if isinstance(c, dict)
        and c.get("type") in ("double", "float", "long", "integer", "boolean")
    ]
    if numeric and len(numeric) == len(signature.get("inputs", [])):
        import random

        rng = random.Random(job.pk)
        return [[rng.gauss(0, 1) for _ in numeric] for _ in range(SAMPLE_ROWS)]
    raise JobError(
        "Conversion needs an input example or a signature of numeric columns to "
        "check the ONNX model's answers against; the version has neither."
    )


def cleared(job: PackagingJob) -> tuple[Artifact, bool]:
    """The input artifact, if a worker may load it: a scikit-learn pickle, joblib or skops
    file whose imports the scan cleared, or one an administrator trusted. Returns (artifact,
    trusted)."""
    artifact = input_artifact(job)
    if artifact.format not in LOADABLE:
        raise JobError(
            f"Only scikit-learn pickle, joblib or skops files can be loaded; this "
            f"is {artifact.format}."
        )
    trusted = artifact.trusted_at is not None
    jobs.job_progress(job, 5, "checking the file", "scanning imports before loading anything")
    report = scan_artifact(artifact)
    if report.verdict != "safe" and not trusted:
        raise JobError(
            f"The file is {report.verdict}: "
            f"{', '.join(report.dangerous or report.unknown or report.problems)}. "
            "Only files whose imports are all on the allow-list are loaded, unless "
            "an administrator trusts this artifact."
        )
    return artifact, trusted


@contextlib.contextmanager
def workdir(purpose: str) -> Iterator[Path]:
    """A clean, private working directory for one child process, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"modelgate-{purpose}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_child(
    artifact: Artifact,
    work: Path,
    rows: list[list[float]],
    *,
    mode: str,
    trusted: bool,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Copy the file into `work` and run the limited child process on it (`options` go into
    its job.json for the mode to read)."""
    with (
        artifact_services.artifact_storage().open(artifact.storage_key, "rb") as source,
        (work / "model.bin").open("wb") as target,
    ):
        shutil.copyfileobj(source, target, 1024 * 1024)
    (work / "rows.json").write_text(json.dumps(rows))
    (work / "job.json").write_text(
        json.dumps({**(options or {}), "format": artifact.format, "mode": mode, "trusted": trusted})
    )
    try:
        code = sandbox.run(
            work,
            memory=settings.CONVERSION_MEMORY_LIMIT,
            cpu=settings.CONVERSION_CPU_SECONDS,
            timeout=settings.CONVERSION_CPU_SECONDS * 2 + 30,
        )
    except sandbox.SandboxError as exc:
        raise JobError(str(exc)) from None
    if code != 0:
        error_file = work / "error.json"
        if error_file.exists():
            message = json.loads(error_file.read_text())["error"]
        elif code in (-signal.SIGXCPU, -signal.SIGKILL):
            message = (
                f"the model process used its {settings.CONVERSION_CPU_SECONDS} s of CPU "
                "time and was stopped"
            )
        else:
            output = work / "output.log"
            message = (
                f"the model process ended with status {code}: "
                f"{output.read_text(errors='replace')[-500:] if output.exists() else ''}"
            )
        raise JobError(f"{STEPS[mode]} failed: {message}")
    return json.loads((work / "result.json").read_text())


def store_output(
    job: PackagingJob, source: Artifact, path: Path, *, name: str, media_type: str, fmt: str
) -> Artifact:
    """Store a file the job made as a derived artifact of its version. A rerun after a worker
    died between storing and finishing finds the file already stored (the same bytes from the
    same source, or any file of this job) instead of adding a second; a name already taken
    gets the job's number."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in artifact_services.read_chunks(handle):
            digest.update(chunk)
    found = (
        job.version.artifacts.filter(format=fmt)
        .filter(Q(derived_from=source, sha256=digest.hexdigest()) | Q(derived_by_job=job))
        .first()
    )
    if found is not None:
        return found
    if job.version.artifacts.filter(filename=name).exists():
        stem, dot, suffix = name.rpartition(".")
        name = f"{stem}-job{job.pk}.{suffix}" if dot else f"{name}-job{job.pk}"
    with path.open("rb") as handle:
        return artifact_services.artifact_upload(
            actor=Actor(user=job.requested_by, channel="worker"),
            version=job.version,
            filename=name,
            chunks=artifact_services.read_chunks(handle),
            media_type=media_type,
            derived_from=source,
            derived_by_job=job,
        )


def described(artifact: Artifact) -> dict[str, Any]:
    """A stored output as a job's result names it."""
    return {
        "id": artifact.pk,
        "filename": artifact.filename,
        "sha256": artifact.sha256,
        "size": artifact.size,
    }


def run(job: PackagingJob) -> dict[str, Any]:
    artifact, trusted = cleared(job)
    rows = rows_for(job)
    with workdir("convert") as work:
        jobs.job_progress(
            job, 20, "converting in a limited process", f"{len(rows)} rows for the parity check"
        )
        result = run_child(artifact, work, rows, mode="convert", trusted=trusted)
        jobs.job_progress(
            job,
            80,
            "checking parity",
            f"label agreement {result['label_agreement']:.4f}, max difference "
            f"{result['max_abs_diff']}",
        )
        parity_ok = result["label_agreement"] >= settings.PARITY_MIN_AGREEMENT and (
            result["max_abs_diff"] is None or result["max_abs_diff"] <= settings.PARITY_MAX_DIFF
        )
        result["thresholds"] = {
            "label_agreement": settings.PARITY_MIN_AGREEMENT,
            "max_abs_diff": settings.PARITY_MAX_DIFF,
        }
        if not parity_ok:
            raise JobError(
                f"The ONNX model disagrees with scikit-learn: label agreement "
                f"{result['label_agreement']:.4f}, max difference "
                f"{result['max_abs_diff']} (thresholds {result['thresholds']})."
            )
        jobs.job_progress(job, 90, "storing the ONNX file")
        stem = validation.text(Path(artifact.filename).stem, field="filename")[:200]
        onnx_artifact = store_output(
            job,
            artifact,
            work / "model.onnx",
            name=f"{stem}.onnx",
            media_type="application/onnx",
            fmt=Artifact.Format.ONNX,
        )
        result["onnx_artifact"] = described(onnx_artifact)
        return result


_TYPES = {bool: "boolean", int: "long", float: "double", str: "string"}


def infer_signature(job: PackagingJob) -> dict[str, Any]:
    """Fill in a missing signature: input columns and types from the input example, the
    output type from the model's prediction on it (in the limited child process)."""
    version = job.version
    if version.signature:
        return {"changed": False, "note": "The version already declares a signature; kept."}
    example = version.input_example
    records = example if isinstance(example, list) else [example] if example else []
    if not records:
        raise JobError("Signature inference needs an input example; the version has none.")
    if all(isinstance(r, dict) for r in records):
        names = list(dict.fromkeys(k for r in records for k in r))
        rows_raw = [[r.get(n) for n in names] for r in records]
    elif all(isinstance(r, list) for r in records):
        names = [f"x{i}" for i in range(len(records[0]))]
        rows_raw = records
    else:
        raise JobError("The input example must be a list of records or of rows.")
    inputs = []
    for i, name in enumerate(names):
        seen = {type(row[i]) for row in rows_raw if i < len(row) and row[i] is not None}
        kind = (
            "double"
            if seen <= {int, float} and float in seen
            else _TYPES.get(next(iter(seen)), "string")
            if len(seen) == 1
            else "string"
        )
        inputs.append({"name": str(name), "type": kind})
    artifact, trusted = cleared(job)
    try:
        rows = [[float(v) for v in row] for row in rows_raw]
    except (TypeError, ValueError):
        raise JobError("Only numeric input examples can be run to infer the output.") from None
    with workdir("infer") as work:
        jobs.job_progress(job, 30, "predicting on the input example in a limited process")
        predicted = run_child(artifact, work, rows, mode="predict", trusted=trusted)
    signature = {
        "inputs": inputs,
        "outputs": [{"name": "prediction", "type": predicted["output_type"]}],
    }
    jobs.job_progress(job, 90, "saving the signature")
    try:
        with transaction.atomic():  # only the attempt that holds the job writes the signature
            jobs.job_require_current(job)
            version_update(
                actor=Actor(user=job.requested_by, channel="worker"),
                version=version,
                signature=signature,
            )
    except DomainError as exc:
        raise JobError(exc.message) from None
    return {"changed": True, "signature": signature, "estimator": predicted["estimator"]}


def compare_formats(job: PackagingJob) -> dict[str, Any]:
    """Size and save, load and inference time of the model as pickle, joblib, skops and ONNX,
    measured in the limited child process on the version's rows."""
    artifact, trusted = cleared(job)
    rows = rows_for(job)
    with workdir("compare") as work:
        jobs.job_progress(
            job, 20, "timing every format in a limited process", f"{len(rows)} rows per prediction"
        )
        result = run_child(artifact, work, rows, mode="compare", trusted=trusted)
    summary = ", ".join(
        f"{r['format']} {r['size']:,} B" if "size" in r else f"{r['format']} failed"
        for r in result["formats"]
    )
    jobs.job_progress(job, 95, "recording the table", summary)
    return result


def torchscript(job: PackagingJob) -> dict[str, Any]:
    """Validate a TorchScript archive: it loads on the CPU in the limited child process and
    returns finite values for the version's rows. Needs PyTorch on the worker."""
    if importlib.util.find_spec("torch") is None:
        raise JobError(
            "PyTorch is not installed on this worker. Install the optional extra "
            "(pip install 'modelgate[torch]') on the workers to validate "
            "TorchScript files."
        )
    artifact = input_artifact(job)
    if artifact.format != Artifact.Format.TORCHSCRIPT:
        raise JobError(
            f"TorchScript validation needs a file saved with torch.jit.save; this "
            f"is {artifact.format}."
        )
    rows = rows_for(job)
    with workdir("torchscript") as work:
        jobs.job_progress(job, 20, "loading and running the module in a limited process")
        return run_child(artifact, work, rows, mode="torchscript", trusted=False)
