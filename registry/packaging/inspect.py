"""The inspect job: verify the stored bytes against the recorded sha256 and size, detect the
format, and scan pickle/joblib files for the imports they would run (registry/packaging/scan)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

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
    elif fmt in INERT:
        verdict = "safe"
        result["scan"] = {"verdict": verdict, "note": f"{fmt} files carry no code to run"}
    else:
        verdict = "suspicious"
        result["scan"] = {"verdict": verdict, "note": "unknown format: nothing to vouch for"}
    artifact_safety_set(artifact, verdict)
    jobs.job_progress(job, 95, "recording the verdict", f"verdict: {verdict}")
    return result
