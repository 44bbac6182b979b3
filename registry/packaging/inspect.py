"""The inspect job: verify the stored bytes against the recorded sha256 and size, detect the
format, and scan pickle/joblib files for the imports they would run (registry/packaging/scan)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import IO, Any

import yaml

from registry.models import Artifact, PackagingJob
from registry.packaging.scan import Report, scan, scan_skops
from registry.services import jobs
from registry.services.artifacts import (
    CHUNK,
    artifact_safety_set,
    artifact_storage,
    detect_format,
)

SCANNED = (Artifact.Format.PICKLE, Artifact.Format.JOBLIB, Artifact.Format.SKOPS)
# Formats whose loaders execute no code from the file.
INERT = (Artifact.Format.ONNX, Artifact.Format.SAFETENSORS)


class JobError(Exception):
    """A job ends as failed with this message."""


def input_artifact(job: PackagingJob) -> Artifact:
    """The file the job works on; the job fails if it was deleted meanwhile."""
    if job.artifact is None:
        raise JobError("The input artifact was deleted.")
    return job.artifact


def scan_artifact(artifact: Artifact, fmt: str | None = None) -> Report:
    """What loading the stored file would import or build, read without loading it."""
    with artifact_storage().open(artifact.storage_key, "rb") as handle:
        if (fmt or artifact.format) == Artifact.Format.SKOPS:
            return scan_skops(handle)
        return scan(handle if hasattr(handle, "seek") else io.BufferedReader(handle))


# What an MLflow model zip may hold for the scan to vouch for it: pickles and skops files it
# can scan, inert model formats, plain data files, and an MLmodel whose flavors load through
# these loaders only and ship no code.
_PICKLES = (".pkl", ".pickle", ".joblib", ".jbl")
_INERT_SUFFIXES = (".onnx", ".safetensors")
_DATA_SUFFIXES = (".yaml", ".yml", ".txt", ".json", ".md")
_MLFLOW_LOADERS = frozenset({"mlflow.sklearn", "mlflow.onnx"})
MLMODEL_LIMIT = 1024 * 1024


def _merge(into: Report, member: str, found: Report) -> None:
    into.pickles += found.pickles
    into.inflated_bytes += found.inflated_bytes
    into.skipped_array_bytes += found.skipped_array_bytes
    into.limit = into.limit or found.limit
    for name in found.imports:
        if name not in into.imports:
            into.imports.append(name)
    into.dangerous += [f"{member}: {n}" for n in found.dangerous]
    into.unknown += [f"{member}: {n}" for n in found.unknown]
    into.problems += [f"{member}: {p}" for p in found.problems]
    into.reasons.update({f"{member}: {k}": v for k, v in found.reasons.items()})


def _check_mlmodel(report: Report, data: bytes) -> None:
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        report.problems.append(f"MLmodel: not readable YAML ({str(exc)[:100]})")
        return
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict):
        report.problems.append("MLmodel: no flavors")
        return
    for name, flavor in flavors.items():
        flavor = flavor if isinstance(flavor, dict) else {}
        loader = flavor.get("loader_module")
        if loader is not None and loader not in _MLFLOW_LOADERS:
            report.dangerous.append(f"MLmodel: {name} loads through {loader}")
            report.reasons[f"MLmodel: {name}"] = "a loader module that runs its own code"
        if flavor.get("code") or flavor.get("python_model") or flavor.get("cloudpickle_version"):
            report.dangerous.append(f"MLmodel: {name} ships code")
            report.reasons[f"MLmodel: {name}"] = "code or a Python model object to import"


def scan_mlflow(handle: IO[bytes]) -> Report:
    """An MLflow model zip (a bundle, or one uploaded as such), member by member, reading
    nothing it does not need: pickles and skops files are scanned like uploads (bounded in
    the same way), the MLmodel may name only the sklearn and ONNX loaders and no code, and
    any member it cannot vouch for makes the zip not safe."""
    report = Report()
    try:
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                name, lower = info.filename, info.filename.lower()
                if info.is_dir() or lower.endswith(_INERT_SUFFIXES + _DATA_SUFFIXES):
                    continue
                if name == "MLmodel":
                    if info.file_size > MLMODEL_LIMIT:
                        report.problems.append("MLmodel: larger than 1 MB")
                    else:
                        _check_mlmodel(report, archive.read(info))
                elif lower.endswith(_PICKLES):
                    with archive.open(info) as member:
                        _merge(report, name, scan(member))
                elif lower.endswith(".skops"):
                    with archive.open(info) as member:
                        _merge(report, name, scan_skops(member))
                else:
                    report.problems.append(f"{name}: a member the scan cannot vouch for")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.problems.append(f"the zip could not be read: {exc}"[:300])
    return report


def run(job: PackagingJob) -> dict[str, Any]:
    artifact = input_artifact(job)
    storage = artifact_storage()
    jobs.job_progress(job, 5, "verifying the stored bytes", f"reading {artifact.filename}")
    digest, size = hashlib.sha256(), 0
    with storage.open(artifact.storage_key, "rb") as handle:
        head = handle.read(4096)
        digest.update(head)
        size += len(head)
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != artifact.sha256 or size != artifact.size:
        raise JobError(f"The stored file does not match its record (sha256 "
                       f"{digest.hexdigest()[:12]}…, {size} bytes; recorded "
                       f"{artifact.sha256[:12]}…, {artifact.size} bytes).")
    jobs.job_progress(job, 40, "detecting the format", f"sha256 and size verified ({size:,} B)")
    with storage.open(artifact.storage_key, "rb") as handle:
        fmt = detect_format(head, artifact.filename, handle, size)
    result: dict[str, Any] = {"sha256_verified": True, "size": size, "format": fmt}
    if fmt in SCANNED or head[:1] == b"\x80":
        jobs.job_progress(job, 50, "scanning what loading would import", f"format {fmt}; "
                          "scanning")
        report = scan_artifact(artifact, fmt)
        result["scan"] = report.as_dict()
        verdict = report.verdict
    elif fmt == Artifact.Format.MLFLOW:
        jobs.job_progress(job, 50, "scanning the MLflow model's members")
        with storage.open(artifact.storage_key, "rb") as handle:
            report = scan_mlflow(handle)
        result["scan"] = report.as_dict()
        verdict = report.verdict
    elif fmt in INERT:
        verdict = "safe"
        result["scan"] = {"verdict": verdict, "note": f"{fmt} files carry no code to run"}
    else:
        verdict = "suspicious"
        result["scan"] = {"verdict": verdict, "note": "unknown format: nothing to vouch for"}
    artifact_safety_set(artifact, verdict)
    jobs.job_progress(job, 95, "recording the verdict", f"verdict: {verdict}")
    return result
