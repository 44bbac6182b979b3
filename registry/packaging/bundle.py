"""The bundle job: one zip a deployer can take away. It unpacks into an MLflow model directory
(``MLmodel`` with the python_function, sklearn and, when the version has one, ONNX flavors and
the signature), with ``requirements.txt``, ``python_env.yaml``, ``conda.yaml``, the version's
other files under ``artifacts/``, the model card (Markdown and JSON, from the cards app through
``registry.signals.bundle_files``) and ``modelgate.json``: model, version, flavor, signature,
requirements, Python version and the sha256 of every file.

The model file is checked in the limited child process (it must load and predict); a joblib
file is re-saved there as a plain pickle, which is what MLflow's sklearn flavor loads. Every
file is streamed into the zip once (from storage or the work directory) and hashed on the way;
`modelgate.json`, which lists those hashes, comes last. The zip is reproducible (fixed entry
times, sorted entries), so a rerun after a lost worker finds the file it already stored
instead of adding a second one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from registry.models import Artifact, ModelVersion, PackagingJob
from registry.packaging import convert
from registry.packaging.inspect import JobError
from registry.services import artifacts as artifact_services
from registry.services import jobs
from registry.services.artifacts import CHUNK

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
UUID_NAMESPACE = uuid.UUID("6d6f6465-6c67-6174-6562-756e646c6521")


def _requirements(
    version: ModelVersion, found: dict[str, str], onnx: bool, skops: bool
) -> list[str]:
    if version.pip_requirements:
        return [str(r) for r in version.pip_requirements]
    names = (
        ["scikit-learn", "numpy", "scipy"]
        + (["skops"] if skops else [])
        + (["onnxruntime"] if onnx else [])
    )
    return [f"{n}=={found[n]}" for n in names if n in found]


def _mlmodel(
    version: ModelVersion,
    model_file: str,
    fmt: str,
    packaged: dict[str, Any],
    onnx: Artifact | None,
    python: str,
) -> dict[str, Any]:
    found = packaged["versions"]
    sklearn_flavor: dict[str, Any] = {
        "pickled_model": model_file,
        "sklearn_version": found.get("scikit-learn", ""),
        "serialization_format": "skops" if fmt == Artifact.Format.SKOPS else "pickle",
        "code": None,
    }
    if fmt == Artifact.Format.SKOPS:
        sklearn_flavor["skops_trusted_types"] = packaged["trusted_types"]
    flavors: dict[str, Any] = {
        "python_function": {
            "loader_module": "mlflow.sklearn",
            "model_path": model_file,
            "predict_fn": "predict",
            "python_version": python,
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        },
        "sklearn": sklearn_flavor,
    }
    if onnx is not None:
        flavors["onnx"] = {
            "data": f"artifacts/{onnx.filename}",
            "onnx_version": found.get("onnx", ""),
            "providers": ["CPUExecutionProvider"],
            "code": None,
        }
    document: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": flavors,
        "model_uuid": uuid.uuid5(UUID_NAMESPACE, f"{version.pk}").hex,
        "utc_time_created": version.created_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {
            "modelgate_model": version.registered_model.name,
            "modelgate_version": version.version,
        },
    }
    if version.signature:
        document["signature"] = {
            "inputs": json.dumps(version.signature.get("inputs", [])),
            "outputs": json.dumps(version.signature.get("outputs", [])),
            "params": None,
        }
    return document


# An entry's content: bytes made here, or a function opening a file to stream from.
Content = bytes | Callable[[], IO[bytes]]


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    """Opens `path` for reading bytes when called."""
    return lambda: path.open("rb")


def _chunks(content: Content) -> Iterator[bytes]:
    if isinstance(content, bytes):
        yield content
        return
    with content() as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _add(archive: zipfile.ZipFile, name: str, content: Content) -> dict[str, Any]:
    """Write one entry (fixed time, so the zip is reproducible), hashing it on the way: every
    file is read once, straight from storage or the work directory."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    digest, size = hashlib.sha256(), 0
    with archive.open(info, "w", force_zip64=not isinstance(content, bytes)) as target:
        for chunk in _chunks(content):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def run(job: PackagingJob) -> dict[str, Any]:
    version = job.version
    source, trusted = convert.cleared(job)
    blocked = [
        f"{a.filename} ({reason})"
        for a, reason in jobs.artifacts_clearance(
            version, [source, *jobs.bundle_included(version, source)]
        )
        if reason
    ]
    if blocked:
        raise JobError(
            "A bundle ships only files whose inspection cleared them (or that an "
            f"administrator trusted); not cleared: {'; '.join(blocked)}."
        )
    rows = convert.rows_for(job)
    with convert.workdir("bundle") as workdir:
        jobs.job_progress(job, 20, "checking the model loads and predicts in a limited process")
        packaged = convert.run_child(source, workdir, rows, mode="package", trusted=trusted)
        model_file = "model.skops" if source.format == Artifact.Format.SKOPS else "model.pkl"
        files: dict[str, Content] = {model_file: _opener(workdir / model_file)}
        jobs.job_progress(job, 50, "collecting the version's files")
        storage = artifact_services.artifact_storage()
        onnx = None
        for artifact in jobs.bundle_included(version, source):
            files[f"artifacts/{artifact.filename}"] = functools.partial(
                storage.open, artifact.storage_key, "rb"
            )
            if artifact.format == Artifact.Format.ONNX and (
                onnx is None or artifact.derived_from_id == source.pk
            ):
                onnx = artifact
        python = version.python_version or platform.python_version()
        requirements = _requirements(
            version, packaged["versions"], onnx is not None, source.format == Artifact.Format.SKOPS
        )
        files["requirements.txt"] = ("\n".join(requirements) + "\n").encode()
        files["python_env.yaml"] = yaml.safe_dump(
            {
                "python": python,
                "build_dependencies": ["pip"],
                "dependencies": ["-r requirements.txt"],
            },
            sort_keys=False,
        ).encode()
        files["conda.yaml"] = yaml.safe_dump(
            {
                "channels": ["conda-forge"],
                "dependencies": [f"python={python}", "pip", {"pip": requirements}],
                "name": "mlflow-env",
            },
            sort_keys=False,
        ).encode()
        mlmodel = _mlmodel(version, model_file, source.format, packaged, onnx, python)
        files["MLmodel"] = yaml.safe_dump(mlmodel, sort_keys=False).encode()
        for name, data in jobs.bundle_extras(version):
            files[name] = data
        jobs.job_progress(job, 70, "writing the zip", f"{len(files) + 1} files")
        archive = workdir / "bundle.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            checksums = {name: _add(bundle, name, files[name]) for name in sorted(files)}
            metadata = {
                "format": "modelgate-bundle/1",
                "model": version.registered_model.name,
                "version": version.version,
                "flavor": "sklearn",
                "model_file": model_file,
                "estimator": packaged["estimator"],
                "signature": version.signature,
                "requirements": requirements,
                "python_version": python,
                "source_artifact": {
                    "filename": source.filename,
                    "sha256": source.sha256,
                    "format": source.format,
                },
                "skops_trusted_types": packaged["trusted_types"],
                "files": checksums,
            }
            _add(bundle, "modelgate.json", json.dumps(metadata, indent=2, sort_keys=True).encode())
        jobs.job_progress(job, 90, "storing the bundle", f"{archive.stat().st_size:,} bytes")
        stored = convert.store_output(
            job,
            source,
            archive,
            name=f"{version.registered_model.name}-v{version.version}-bundle.zip",
            media_type="application/zip",
            fmt=Artifact.Format.MLFLOW,
        )
    return {
        "bundle_artifact": convert.described(stored),
        "files": sorted([*files, "modelgate.json"]),
        "flavors": sorted(mlmodel["flavors"]),
        "requirements": requirements,
        "estimator": packaged["estimator"],
    }
