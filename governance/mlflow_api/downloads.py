"""Loading governed models with MLflow: what ``model-versions/get-download-uri`` answers, and
MLflow's ``mlflow-artifacts`` list and get protocol over HTTP, serving a version's MLflow bundle.

* A version whose files Modelgate stores is served as its **MLflow bundle**: the zip the bundle
  packaging job (registry/packaging/bundle.py) derived from the version's current content, so
  the client loads the model file the inspection cleared, with its MLmodel, requirements and
  card. The download URI names that one bundle (``…/mlflow-artifacts/artifacts/bundles/<artifact
  id>``), so what the client lists and then fetches is one consistent set even if a new bundle
  is built meanwhile. Only zips a bundle job wrote are served, never a zip a user uploaded (a
  user's zip could hold anything).
* Without a current bundle, the bundle job is started, if the caller may change the model (the
  job service's own rule; a reader cannot make Modelgate write files and jobs), and the client
  gets a clear refusal that MLflow's client does not retry (it retries 408, 429 and 5xx for
  minutes): **409 RESOURCE_CONFLICT** while the bundle can come soon (being built, its files
  being inspected, waiting for someone allowed to build it) — MLflow's own status for that code,
  and "retry later" is what a conflict with the resource's current state means; **400
  INVALID_STATE** when it cannot be built as the version is (no scikit-learn file, files not
  cleared, the build failed), with why and what to do. A failed build is not restarted by asking
  again (each retry would start a job failing the same way) unless its files were cleared after
  it started (it failed on an inspection that had not finished, or a file trusted since).
* A version without stored files answers its ``source`` unchanged (s3://, gs://, …):
  Modelgate never fetches a URI a user gave. A ``models:/`` reference is refused
  (INVALID_STATE): Modelgate never serves another version's content under this version's
  approvals, which cover its own content, not what another version holds later. MLflow's
  copy_model_version (a create with a ``models:/<name>/<n>`` source) copies that version's
  files, or its source URI, into the new one when it is created (views._copied).

Downloads are reads: like /api/v1's artifact download, they go through the permission gate
(``registry.services.artifact_open``) and are not audited; refusals are (the error handler).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import IO, Any

from django.db.models import Max, Q
from django.http import StreamingHttpResponse
from django.urls import path, reverse
from rest_framework.request import Request
from rest_framework.response import Response

from core import permissions
from core.actors import Actor
from core.edge import is_whole_number
from core.permissions import Perm
from governance.mlflow_api import errors
from governance.mlflow_api.base import MlflowView
from registry import services
from registry.models import Artifact, ModelVersion, PackagingJob
from registry.models.packaging import ACTIVE
from registry.services import jobs
from registry.services.artifacts import CHUNK

BUNDLE = PackagingJob.Kind.BUNDLE
Status = PackagingJob.Status
ROOT = "bundles"  # the one directory of Modelgate's mlflow-artifacts tree: bundles/<artifact id>
LIST_URL = "mlflow-artifacts-list"
FILE_URL = "mlflow-artifacts-file"


# --- get-download-uri -----------------------------------------------------------------------


def download_uri(request: Request, version: ModelVersion) -> str:
    """The artifact_uri MLflow's client downloads `version` from (the caller has checked that
    the user may view it). Raises MlflowError while the version's bundle is not available."""
    if version.artifacts.filter(derived=False).exists():
        bundle = _bundle_or_refusal(request, version)
        return request.build_absolute_uri(reverse(FILE_URL, kwargs={"path": _root(bundle)}))
    if not version.source:
        raise errors.MlflowError(
            errors.INVALID_STATE,
            f"Version {version.version} of '{version.registered_model.name}' has neither files "
            "stored in Modelgate nor a source URI to load it from.",
            code="no_source",
        )
    if version.source.startswith("models:/"):
        # A reference to another version (registered through /api/v1): answering it would
        # let the client load whatever that version, or the alias or stage named, holds
        # later, under this version's approvals. A copy made through MLflow's API holds its
        # own files (views._copied) and never gets here.
        raise errors.MlflowError(
            errors.INVALID_STATE,
            f"Version {version.version} of '{version.registered_model.name}' refers to "
            f"{version.source[:300]} instead of holding files; Modelgate does not load another "
            "version's content under this one's approvals. Register it with MLflow's "
            "copy_model_version (which copies the files) or upload its files.",
            code="source_is_reference",
        )
    # Somewhere else (s3://, gs://, …): as given; Modelgate never fetches it.
    return version.source


def _root(bundle: Artifact) -> str:
    return f"{ROOT}/{bundle.pk}"


def _bundle_or_refusal(request: Request, version: ModelVersion) -> Artifact:
    """The version's current bundle; else start building it (if the user may) and refuse."""
    registered_model = version.registered_model
    what = f"version {version.version} of '{registered_model.name}'"
    # The file the job packs, picked by the job service's own rule so the digests compare.
    source = jobs._input(version, BUNDLE, None)
    if source is None:  # only files other jobs derived: nothing a bundle is made from
        raise errors.MlflowError(
            errors.INVALID_STATE, f"{what.capitalize()} has no file to bundle.", code="no_input"
        )
    digest = jobs.bundle_input_digest(version, source)
    bundle = _current_bundle(version, digest)
    if bundle is not None:
        return bundle
    if source.format not in jobs.INPUT_FORMATS[BUNDLE]:
        raise errors.MlflowError(
            errors.INVALID_STATE,
            f"Modelgate builds MLflow bundles of scikit-learn models (a pickle, joblib or skops "
            f"file); {what} has {source.filename} ({source.get_format_display()}). Download its "
            f"files from {_url(request, 'registry-api:artifact-list', version)}.",
            code="bundle_unsupported",
        )
    files = [source, *jobs.bundle_included(version, source)]
    _require_cleared(request, version, files, what)
    latest = (
        PackagingJob.objects.filter(version=version, kind=BUNDLE, input_sha256=digest)
        .order_by("-created_at", "-pk")
        .first()
    )
    if latest is not None and latest.is_active:
        raise _building(request, latest, version, what, started=False)
    if (
        latest is not None
        and latest.status == Status.FAILED
        and not _cleared_since(version, files, latest)
    ):
        raise _failed(request, latest, version, what)
    if not permissions.has(request.user, Perm.CHANGE, registered_model):
        owner = registered_model.owner
        raise errors.MlflowError(
            errors.RESOURCE_CONFLICT,
            f"{what.capitalize()} has no MLflow bundle of its current files yet, and building "
            f"one needs change permission on '{registered_model.name}', which you do not have. "
            f"Ask someone who may change it{f' (its owner, {owner.username})' if owner else ''} "
            "to build it (the Bundle job on the version page, or POST "
            f'{_url(request, "registry-api:job-list", version)} with {{"kind": "bundle"}}), '
            "then retry.",
            status=409,
            code="bundle_missing",
        )
    # A bundle job succeeded for this content but its file is gone: only `force` builds anew.
    gone = PackagingJob.objects.filter(
        version=version, kind=BUNDLE, input_sha256=digest, status=Status.SUCCEEDED
    ).exists()
    job, created = services.job_start(
        actor=Actor.from_request(request, channel="api"), version=version, kind=BUNDLE, force=gone
    )
    job.refresh_from_db()  # a worker running tasks eagerly may have finished it already
    if job.status == Status.SUCCEEDED:
        bundle = _current_bundle(version, job.input_sha256)
        if bundle is not None:
            return bundle
    if job.status == Status.FAILED:
        raise _failed(request, job, version, what)
    raise _building(request, job, version, what, started=created)


def _current_bundle(version: ModelVersion, digest: str) -> Artifact | None:
    """The newest zip a bundle job built from content with this digest: by the job that
    derived it, or by a later job that found the same bytes already stored."""
    results = PackagingJob.objects.filter(
        version=version, kind=BUNDLE, input_sha256=digest, status=Status.SUCCEEDED
    ).values_list("result", flat=True)
    ids = [
        r["bundle_artifact"]["id"]
        for r in results
        if isinstance(r, dict)
        and isinstance(r.get("bundle_artifact"), dict)
        and isinstance(r["bundle_artifact"].get("id"), int)
    ]
    return (
        _bundles()
        .filter(version=version)
        .filter(
            Q(derived_by_job__input_sha256=digest, derived_by_job__status=Status.SUCCEEDED)
            | Q(pk__in=ids)
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def _bundles() -> Any:
    """Zips Modelgate's bundle job wrote (never a file a user uploaded)."""
    return Artifact.objects.filter(
        format=Artifact.Format.MLFLOW, derived=True, derived_by_job__kind=BUNDLE
    )


def _require_cleared(
    request: Request, version: ModelVersion, files: list[Artifact], what: str
) -> None:
    """Refuse before starting a job that would fail: the bundle ships only cleared files."""
    blocked = [(a, reason) for a, reason in jobs.artifacts_clearance(version, files) if reason]
    if not blocked:
        return
    listed = "; ".join(f"{a.filename} ({reason})" for a, reason in blocked)
    if all(reason in {f"inspection {s}" for s in ACTIVE} for _, reason in blocked):
        raise errors.MlflowError(
            errors.RESOURCE_CONFLICT,
            f"The files of {what} are still being inspected ({listed}); its MLflow bundle is "
            "built once they are cleared. Retry in a minute.",
            status=409,
            code="bundle_inspecting",
        )
    raise errors.MlflowError(
        errors.INVALID_STATE,
        f"The MLflow bundle of {what} ships only files whose inspection cleared them or that "
        f"an administrator trusted; not cleared: {listed}. See "
        f"{_url(request, 'registry:version-detail', version)}.",
        code="bundle_not_cleared",
    )


def _cleared_since(version: ModelVersion, files: list[Artifact], job: PackagingJob) -> bool:
    """Whether a file of the bundle was cleared (inspected or trusted) after `job` started:
    then the job may have failed on what is now settled, and is worth running again."""
    inspected = PackagingJob.objects.filter(
        version=version,
        kind=PackagingJob.Kind.INSPECT,
        status=Status.SUCCEEDED,
        input_sha256__in={a.sha256 for a in files},
    ).aggregate(last=Max("finished_at"))["last"]
    moments = [m for m in (inspected, *(a.trusted_at for a in files)) if m is not None]
    return any(m > job.created_at for m in moments)


def _building(
    request: Request, job: PackagingJob, version: ModelVersion, what: str, *, started: bool
) -> errors.MlflowError:
    state = f"running, {job.progress}% done" if job.status == Status.RUNNING else job.status
    step = f" ({job.step})" if job.step else ""
    return errors.MlflowError(
        errors.RESOURCE_CONFLICT,
        f"The MLflow bundle of {what} is being built: bundle job #{job.pk} "
        f"{'was started just now and ' if started else ''}is {state}{step}. Retry in a "
        f"minute. Progress: {_url(request, 'registry-api:job-detail', version, job)}",
        status=409,
        code="bundle_building",
    )


def _failed(
    request: Request, job: PackagingJob, version: ModelVersion, what: str
) -> errors.MlflowError:
    reason = (job.error or "no reason recorded").strip()[:1000]
    return errors.MlflowError(
        errors.INVALID_STATE,
        f"Building the MLflow bundle of {what} failed (bundle job #{job.pk}): {reason} Once "
        f"that is fixed, build it again: POST {_url(request, 'registry-api:job-list', version)}"
        ' with {"kind": "bundle", "force": true}.',
        code="bundle_failed",
    )


def _url(
    request: Request, name: str, version: ModelVersion, job: PackagingJob | None = None
) -> str:
    kwargs: dict[str, Any] = {"name": version.registered_model.name, "number": version.version}
    if job is not None:
        kwargs["job_id"] = job.pk
    return request.build_absolute_uri(reverse(name, kwargs=kwargs))


# --- mlflow-artifacts: list and get ---------------------------------------------------------


def _parts(raw: str) -> list[str]:
    """A relative path's segments; traversal, absolute paths and NUL are refused (400)."""
    if "\x00" in raw or "\\" in raw or raw.startswith("/"):
        raise errors.invalid("Invalid path.")
    parts = raw.rstrip("/").split("/") if raw.rstrip("/") else []
    if any(p in ("", ".", "..") for p in parts):
        raise errors.invalid("Invalid path.")
    return parts


def _bundle(request: Request, parts: list[str]) -> tuple[Artifact, list[str]]:
    """The visible bundle a path starts with (bundles/<id>) and the path inside it."""
    if len(parts) < 2 or parts[0] != ROOT or not is_whole_number(parts[1]):
        raise errors.missing(
            "Modelgate serves MLflow bundles only, at bundles/<id> (ask get-download-uri).",
            "bundle_not_found",
        )
    pk = int(parts[1])
    bundle = (
        permissions.visible(request.user, _bundles().filter(pk=pk))
        .select_related("version__registered_model")
        .first()
    )
    if bundle is None:
        error = errors.missing(f"MLflow bundle {pk} not found.", "bundle_not_found")
        # Only on this error path: is it there, hidden from the user? (for the audit log)
        hidden = (
            _bundles()
            .filter(pk=pk)
            .values_list("version__registered_model_id", "version__registered_model__name")
            .first()
        )
        if hidden is not None:
            error.refusing(hidden[0], hidden[1], str(Perm.VIEW))
        raise error
    return bundle, parts[2:]


def _safe_entry(name: str) -> list[str] | None:
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        return None
    return parts


class _Member:
    """One zip member, streamed chunk by chunk; closing it closes the zip and the stored file
    (StreamingHttpResponse calls close() when the response ends, sent or not)."""

    def __init__(self, handle: IO[bytes], archive: zipfile.ZipFile, info: zipfile.ZipInfo):
        self.handle, self.archive, self.info = handle, archive, info

    def __iter__(self) -> Iterator[bytes]:
        with self.archive.open(self.info) as member:
            while chunk := member.read(CHUNK):
                yield chunk

    def close(self) -> None:
        try:
            self.archive.close()
        finally:
            self.handle.close()


class _BundleView(MlflowView):
    def open(self, bundle: Artifact) -> tuple[IO[bytes], zipfile.ZipFile]:
        handle = services.artifact_open(actor=self.actor(), artifact=bundle)
        try:
            return handle, zipfile.ZipFile(handle)
        except BaseException:
            handle.close()
            raise


class ArtifactList(_BundleView):
    """``GET mlflow-artifacts/artifacts?path=bundles/<id>[/<dir>]``: a directory of the bundle,
    entries named relative to it (as MLflow's server answers); a file or nothing there lists
    as empty, which is how the client tells a file from a directory."""

    def get(self, request: Request) -> Response:
        bundle, inside = _bundle(request, _parts(self.text("path", required=False)))
        handle, archive = self.open(bundle)
        with handle, archive:
            entries: dict[str, dict[str, Any]] = {}
            for info in archive.infolist():
                parts = _safe_entry(info.filename)
                if parts is None or parts[: len(inside)] != inside or len(parts) <= len(inside):
                    continue
                child = parts[len(inside)]
                if len(parts) > len(inside) + 1 or info.is_dir():
                    entries[child] = {"path": child, "is_dir": True}
                else:
                    entries.setdefault(
                        child, {"path": child, "is_dir": False, "file_size": info.file_size}
                    )
        files = [entries[name] for name in sorted(entries)]
        return self.ok({"files": files} if files else {})


class ArtifactFile(_BundleView):
    """``GET mlflow-artifacts/artifacts/bundles/<id>/<file>``: one file of the bundle, streamed
    out of the stored zip (never whole in memory)."""

    def get(self, request: Request, path: str) -> StreamingHttpResponse:
        bundle, inside = _bundle(request, _parts(path))
        handle, archive = self.open(bundle)
        info = None
        if inside:
            try:
                info = archive.getinfo("/".join(inside))
            except KeyError:
                info = None
        if info is None or info.is_dir():
            archive.close()
            handle.close()
            raise errors.missing(
                f"No file '{'/'.join(inside)}' in MLflow bundle {bundle.pk}.",
                "bundle_file_not_found",
            )
        response = StreamingHttpResponse(
            _Member(handle, archive, info), content_type="application/octet-stream"
        )
        response["Content-Length"] = str(info.file_size)
        return response


# Relative to api/2.0/ (config/urls.py mounts governance.mlflow_api.urls there).
urlpatterns = [
    path("mlflow-artifacts/artifacts", ArtifactList.as_view(), name=LIST_URL),
    path("mlflow-artifacts/artifacts/<path:path>", ArtifactFile.as_view(), name=FILE_URL),
]
