"""The BentoML job: a cleared scikit-learn version saved as a BentoML model and stored as a
``.bentomodel`` archive, a derived artifact of the version that ``bentoml models import``
takes as it is.

The work is done in the limited child process (registry/packaging/child.py, mode
``bentoml``): it loads the model through the restricted unpickler, saves it into a BentoML
model store inside its own work directory, exports the archive, deletes the model from the
store, imports the archive back and checks that the imported model answers the version's rows
as the original does (and still holds the files attached to it). The archive carries the
Modelgate model and version as labels, the source file and the signature as metadata, and the
model card (what other apps add to bundles) as model_card.json and model_card.md in the model's
folder, named in the metadata with their sha256, status and revision. Before it is stored the
worker inspects the archive as it would an upload; one that would not pass is not stored.

BentoML is optional on workers (``pip install 'modelgate[bentoml]'``); without it the job
fails and says what to install. The archive is inspected like any other file: the inspection
reads the tar member by member (registry/packaging/inspect.py ``scan_bentoml``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import PurePosixPath
from typing import Any

from registry.models import Artifact, ModelVersion, PackagingJob
from registry.packaging import convert
from registry.packaging.inspect import JobError, scan_bentoml
from registry.services import jobs

TAG_MAX = 63  # BentoML's limit for a tag's name and for its version
_NOT_IN_TAG = re.compile(r"[^a-z0-9._-]+")


def tag_part(text: str, fallback: str) -> str:
    """`text` as a BentoML tag name or version: lower case ASCII letters, digits and ``._-``,
    starting and ending with a letter or digit, at most 63 characters."""
    cleaned = _NOT_IN_TAG.sub("-", text.lower())[:TAG_MAX].strip("._-")
    return cleaned or fallback


def _tag(version: ModelVersion, job: PackagingJob) -> str:
    """name:v<version>-<input digest>-<job>: the same input gives the same archive (a start
    returns the earlier job), and a forced rerun, whose archive differs in its creation time,
    a tag of its own, so both import into one store."""
    name = tag_part(version.registered_model.name, "model")
    return f"{name}:v{version.version}-{job.input_sha256[:12]}-{job.pk}"


def _without_nulls(value: Any) -> Any:
    """`value` with its nulls left out: BentoML's metadata takes no None (an absent key or
    item reads the same to whoever reads the card)."""
    if isinstance(value, dict):
        return {str(k): _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _attached(version: ModelVersion, source: Artifact) -> tuple[dict[str, Any], dict[str, str]]:
    """What travels with the model: metadata naming where it comes from and its signature,
    and the files other apps add to bundles (the card as model_card.json and model_card.md),
    which go into the model's folder (model.yaml, which holds the metadata, stays small
    whatever the card's size) and are named in the metadata with their sha256 (and, for JSON
    documents, their status and revision)."""
    metadata: dict[str, Any] = {
        "modelgate": {
            "model": version.registered_model.name,
            "version": version.version,
            "source_artifact": {
                "filename": source.filename,
                "sha256": source.sha256,
                "format": source.format,
            },
        },
    }
    if version.signature:
        metadata["signature"] = version.signature
    files: dict[str, str] = {}
    for name, data in jobs.bundle_extras(version):
        files[name] = data.decode()
        entry: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
        if name.endswith(".json"):
            document = json.loads(data)
            entry |= {k: document[k] for k in ("status", "revision") if k in document}
        metadata.setdefault(PurePosixPath(name).stem, {"files": {}})["files"][name] = entry
    return _without_nulls(metadata), files


def run(job: PackagingJob) -> dict[str, Any]:
    if importlib.util.find_spec("bentoml") is None:
        raise JobError(
            "BentoML is not installed on this worker. Install the optional extra "
            "(pip install 'modelgate[bentoml]') on the workers to package BentoML models."
        )
    version = job.version
    source, trusted = convert.cleared(job)
    rows = convert.rows_for(job)
    metadata, files = _attached(version, source)
    tag = _tag(version, job)
    options = {
        "bentoml": {
            "tag": tag,
            "labels": {
                "modelgate.model": tag_part(version.registered_model.name, "model"),
                "modelgate.version": str(version.version),
            },
            "metadata": metadata,
            "files": files,
        }
    }
    with convert.workdir("bentoml") as work:
        jobs.job_progress(
            job, 20, "saving, exporting and importing back in a limited process", f"tag {tag}"
        )
        result = convert.run_child(
            source, work, rows, mode="bentoml", trusted=trusted, options=options
        )
        jobs.job_progress(
            job,
            80,
            "inspecting the archive",
            f"the imported model answered {result['rows']} rows as the original",
        )
        with (work / "model.bentomodel").open("rb") as handle:
            report = scan_bentoml(handle)
        if report.verdict != "safe":
            raise JobError(
                "The archive BentoML wrote would not pass the inspection: "
                f"{'; '.join(report.dangerous + report.problems + [report.limit])[:500]}"
            )
        jobs.job_progress(job, 90, "storing the archive")
        stored = convert.store_output(
            job,
            source,
            work / "model.bentomodel",
            name=f"{tag.replace(':', '-')}.bentomodel",
            media_type="application/x-xz",
            fmt=Artifact.Format.BENTOML,
        )
    return {
        **result,
        "bentoml_artifact": convert.described(stored),
        "metadata_keys": sorted(metadata),
        "files": sorted(files),
    }
