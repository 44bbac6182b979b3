"""The inspect job: verify the stored bytes against the recorded sha256 and size, detect the
format, and scan pickle/joblib files for the imports they would run (registry/packaging/scan)."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import IO, Any

import yaml
from django.db import transaction

from registry.models import Artifact, PackagingJob
from registry.packaging.scan import (
    MAX_COMPRESSION_RATIO,
    MAX_INFLATED_BYTES,
    Report,
    inflation_past,
    limit_setting,
    scan,
    scan_skops,
)
from registry.services import jobs
from registry.services.artifacts import CHUNK, artifact_storage, detect_format

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
_DATA_SUFFIXES = (".yaml", ".yml", ".txt", ".json", ".md")
_MLFLOW_LOADERS = frozenset({"mlflow.sklearn", "mlflow.onnx"})
# Flavor keys naming the file (or folder) a loader opens: what they name is scanned whatever
# its suffix says (a pickle called model.json is still a pickle to mlflow.sklearn).
_MODEL_KEYS = ("pickled_model", "model_path", "data", "model_data", "python_model")
MLMODEL_LIMIT = 1024 * 1024
SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


def safetensors_ok(handle: IO[bytes], size: int) -> bool:
    """Whether the file really is safetensors: a little-endian header length, a JSON object
    of tensors whose byte ranges fit the file. Eight bytes and a '{' alone prove nothing (a
    pickle can start that way)."""
    head = handle.read(8)
    if len(head) < 8:
        return False
    length = int.from_bytes(head, "little")
    if not 2 <= length <= min(SAFETENSORS_HEADER_LIMIT, size - 8):
        return False
    try:
        header = json.loads(handle.read(length))
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(header, dict):
        return False
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1] <= size - 8 - length
        ):
            return False
    return True


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


def _check_mlmodel(report: Report, data: bytes) -> dict[str, str]:
    """Judge the MLmodel's flavors; return the paths its loaders would deserialise, each with
    how ("pickle" or "skops"); the ONNX loader's files are protobuf, not listed."""
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        report.problems.append(f"MLmodel: not readable YAML ({str(exc)[:100]})")
        return {}
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict):
        report.problems.append("MLmodel: no flavors")
        return {}
    opened: dict[str, str] = {}
    for name, flavor in flavors.items():
        if (
            not isinstance(flavor, dict)
            or name == "onnx"
            or flavor.get("loader_module") == "mlflow.onnx"
        ):
            continue
        how = "skops" if flavor.get("serialization_format") == "skops" else "pickle"
        for key in _MODEL_KEYS:
            if flavor.get(key):
                opened.setdefault(str(flavor[key]).strip("/"), how)
    for name, flavor in flavors.items():
        flavor = flavor if isinstance(flavor, dict) else {}
        loader = flavor.get("loader_module")
        if loader is not None and loader not in _MLFLOW_LOADERS:
            report.dangerous.append(f"MLmodel: {name} loads through {loader}")
            report.reasons[f"MLmodel: {name}"] = "a loader module that runs its own code"
        if flavor.get("code") or flavor.get("python_model") or flavor.get("cloudpickle_version"):
            report.dangerous.append(f"MLmodel: {name} ships code")
            report.reasons[f"MLmodel: {name}"] = "code or a Python model object to import"
    return opened


def scan_mlflow(handle: IO[bytes]) -> Report:
    """An MLflow model zip (a bundle, or one uploaded as such), member by member, reading
    nothing it does not need: pickles and skops files are scanned like uploads (bounded in
    the same way), the MLmodel may name only the sklearn and ONNX loaders and no code, and
    any member it cannot vouch for makes the zip not safe. What a flavor names is judged by
    its content, never by its suffix."""
    report = Report()
    try:
        with zipfile.ZipFile(handle) as archive:
            opened: dict[str, str] = {}
            mlmodel = next((i for i in archive.infolist() if i.filename == "MLmodel"), None)
            if mlmodel is None:
                report.problems.append("no MLmodel")
            elif mlmodel.file_size > MLMODEL_LIMIT:
                report.problems.append("MLmodel: larger than 1 MB")
            else:
                opened = _check_mlmodel(report, archive.read(mlmodel))
            for info in archive.infolist():
                name, lower = info.filename, info.filename.lower()
                loaded = next(
                    (how for p, how in opened.items() if name == p or name.startswith(f"{p}/")), ""
                )
                if info.is_dir() or name == "MLmodel":
                    continue
                if lower.endswith(".skops") or loaded == "skops":
                    with archive.open(info) as member:
                        _merge(report, name, scan_skops(member))
                elif lower.endswith(_PICKLES) or loaded:
                    with archive.open(info) as member:
                        _merge(report, name, scan(member))
                elif lower.endswith(".safetensors"):
                    with archive.open(info) as member:
                        if not safetensors_ok(member, info.file_size):
                            report.problems.append(f"{name}: not a safetensors file")
                elif lower.endswith(".onnx"):
                    continue
                elif not lower.endswith(_DATA_SUFFIXES):
                    report.problems.append(f"{name}: a member the scan cannot vouch for")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.problems.append(f"the zip could not be read: {exc}"[:300])
    return report


# What a BentoML archive may hold for the scan to vouch for it: a model.yaml naming the
# scikit-learn loader (any other module would be imported to load it), pickles it can scan
# (the model, custom objects) and plain data files; no Python sources (external modules are
# imported on load), no links or devices, nothing outside the archive's folder.
_BENTOML_MODULES = frozenset({"bentoml.sklearn"})
BENTOML_MEMBERS_LIMIT = 10_000


def _bentoml_member(info: tarfile.TarInfo) -> str | None:
    """The member's name inside the model folder, or None when it is not a plain file or
    folder under it. A backslash is refused: BentoML's importer reads it as a separator."""
    path = PurePosixPath(info.name)
    if (
        "\\" in info.name
        or path.is_absolute()
        or ".." in path.parts
        or not (info.isfile() or info.isdir())
    ):
        return None
    return path.as_posix().removeprefix("./")


def _stored_size(handle: IO[bytes]) -> int | None:
    try:
        handle.seek(0, io.SEEK_END)
        size = handle.tell()
        handle.seek(0)
    except (OSError, AttributeError, ValueError):
        return None
    return size


def scan_bentoml(handle: IO[bytes]) -> Report:
    """A BentoML model archive (``bentoml models export``: a tar, xz-compressed), member by
    member: model.yaml must name a loader this scan knows, every pickle is scanned like an
    upload, and any member it cannot vouch for makes the archive not safe. The members' sizes
    count against SCAN_MAX_INFLATED_BYTES and SCAN_MAX_COMPRESSION_RATIO before any is
    inflated (reaching the next header inflates the one before)."""
    report = Report()
    seen_yaml, names = False, set()
    stored = _stored_size(handle)
    max_inflated = limit_setting("SCAN_MAX_INFLATED_BYTES", MAX_INFLATED_BYTES)
    max_ratio = limit_setting("SCAN_MAX_COMPRESSION_RATIO", MAX_COMPRESSION_RATIO)
    try:
        with tarfile.open(fileobj=handle, mode="r:xz") as archive:
            for count, info in enumerate(archive, start=1):
                if count > BENTOML_MEMBERS_LIMIT:
                    report.problems.append(f"more than {BENTOML_MEMBERS_LIMIT} members")
                    break
                report.inflated_bytes += info.size + tarfile.BLOCKSIZE
                past = inflation_past(
                    report.inflated_bytes, stored, max_inflated=max_inflated, max_ratio=max_ratio
                )
                if past:
                    report.limit = f"{past}, at member {info.name} (declared sizes)"
                    break
                name = _bentoml_member(info)
                if name is None:
                    report.problems.append(f"{info.name}: not a plain file inside the model")
                    continue
                if name in names:
                    report.problems.append(f"{name}: more than once in the archive")
                names.add(name)
                if info.isdir():
                    continue
                member = archive.extractfile(info)
                if member is None:  # pragma: no cover - a regular file always has content
                    continue
                with member:
                    if name == "model.yaml":
                        seen_yaml = True
                        _check_bento_yaml(report, member.read(MLMODEL_LIMIT + 1))
                    elif name.lower().endswith(_PICKLES):
                        _merge(report, name, scan(member))
                    elif not name.lower().endswith(_DATA_SUFFIXES):
                        report.problems.append(f"{name}: a member the scan cannot vouch for")
    except (tarfile.TarError, lzma.LZMAError, OSError, EOFError) as exc:
        report.problems.append(f"the archive could not be read: {exc}"[:300])
    if not seen_yaml:
        report.problems.append("no model.yaml")
    return report


def _check_bento_yaml(report: Report, data: bytes) -> None:
    if len(data) > MLMODEL_LIMIT:
        report.problems.append("model.yaml: larger than 1 MB")
        return
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        report.problems.append(f"model.yaml: not readable YAML ({str(exc)[:100]})")
        return
    module = document.get("module") if isinstance(document, dict) else None
    if module not in _BENTOML_MODULES:
        report.dangerous.append(f"model.yaml: loads through {module}")
        report.reasons["model.yaml"] = "a loader module this scan does not know"


JSON_LIMIT = 64 * 1024 * 1024


def _is_json(storage: Any, artifact: Artifact) -> bool:
    """Whether the whole file parses as JSON (feature lists, tokenizer or label maps): data,
    whatever a loader does with it. Anything else named .json is judged like any unknown file."""
    with storage.open(artifact.storage_key, "rb") as handle:
        try:
            json.loads(handle.read(JSON_LIMIT + 1))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False
    return True


_ARCHIVES: dict[str, Callable[[IO[bytes]], Report]] = {
    Artifact.Format.MLFLOW: scan_mlflow,
    Artifact.Format.BENTOML: scan_bentoml,
}


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
        raise JobError(
            f"The stored file does not match its record (sha256 "
            f"{digest.hexdigest()[:12]}…, {size} bytes; recorded "
            f"{artifact.sha256[:12]}…, {artifact.size} bytes)."
        )
    jobs.job_progress(job, 40, "detecting the format", f"sha256 and size verified ({size:,} B)")
    with storage.open(artifact.storage_key, "rb") as handle:
        fmt = detect_format(head, artifact.filename, handle, size)
    result: dict[str, Any] = {"sha256_verified": True, "size": size, "format": fmt}
    if fmt == Artifact.Format.SAFETENSORS:
        with storage.open(artifact.storage_key, "rb") as handle:
            if not safetensors_ok(handle, size):
                fmt = result["format"] = Artifact.Format.OTHER  # judged below, not trusted
    if fmt in SCANNED or head[:1] == b"\x80" or artifact.filename.lower().endswith(_PICKLES):
        jobs.job_progress(job, 50, "scanning what loading would import", f"format {fmt}; scanning")
        report = scan_artifact(artifact, fmt)
        result["scan"] = report.as_dict()
        verdict = report.verdict
    elif fmt in _ARCHIVES:
        jobs.job_progress(job, 50, "scanning the archive's members", f"format {fmt}")
        with storage.open(artifact.storage_key, "rb") as handle:
            report = _ARCHIVES[fmt](handle)
        result["scan"] = report.as_dict()
        verdict = report.verdict
    elif (
        artifact.filename.lower().endswith(".json")
        and size <= JSON_LIMIT
        and _is_json(storage, artifact)
    ):
        # Valid JSON never starts with a pickle opcode that could build anything.
        verdict = "safe"
        result["scan"] = {"verdict": verdict, "note": "JSON data carries no code to run"}
    elif fmt in INERT:
        verdict = "safe"
        result["scan"] = {"verdict": verdict, "note": f"{fmt} files carry no code to run"}
    else:
        verdict = "suspicious"
        result["scan"] = {"verdict": verdict, "note": "unknown format: nothing to vouch for"}
    with transaction.atomic():  # only the attempt that holds the job records the verdict
        jobs.job_require_current(job)
        if fmt != artifact.format:  # the inspection, reading the whole file, has the last word
            Artifact.objects.filter(pk=artifact.pk).update(format=fmt)
        jobs.artifact_safety_set(artifact, verdict)
    jobs.job_progress(job, 95, "recording the verdict", f"verdict: {verdict}")
    return result
