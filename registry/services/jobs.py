"""Packaging jobs: start (idempotent per kind and input), cancel, and the worker's side of
claiming a job, reporting progress and finishing it. The work itself is in
registry/packaging/; the Celery task is registry.tasks.run_job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import enqueue_on_commit
from governance import audit, permissions
from governance.actors import Actor
from governance.permissions import Perm
from registry.errors import Conflict, ValidationFailed
from registry.models import Artifact, ModelVersion, PackagingJob
from registry.services.common import insert_or_conflict

Status = PackagingJob.Status
Kind = PackagingJob.Kind
F = Artifact.Format
MAX_LOG = 20_000
# The formats each kind works on, to pick its input when the caller names none.
INPUT_FORMATS = {Kind.TORCHSCRIPT: (F.TORCHSCRIPT,),
                 **{k: (F.PICKLE, F.JOBLIB, F.SKOPS) for k in (
                     Kind.CONVERT_ONNX, Kind.COMPARE_FORMATS, Kind.INFER_SIGNATURE, Kind.BUNDLE)}}


def _input(version: ModelVersion, kind: str, artifact: Artifact | None) -> Artifact | None:
    if artifact is not None:
        if artifact.version_id != version.pk:
            raise ValidationFailed("That artifact belongs to another version.", field="artifact")
        return artifact
    # Default input: the version's newest original (not derived) artifact, in a format the
    # kind works on if there is one (else the job says why it cannot use the file).
    originals = version.artifacts.filter(derived_from__isnull=True).order_by("-created_at", "-pk")
    formats = INPUT_FORMATS.get(kind)
    return ((formats and originals.filter(format__in=formats).first()) or originals.first())


def _input_digest(version: ModelVersion, kind: str, source: Artifact) -> str:
    """What makes two jobs the same: the input file, and for a bundle everything it packs."""
    if kind == Kind.BUNDLE:
        from registry.packaging.bundle import input_digest

        return input_digest(version, source)
    return source.sha256


@transaction.atomic
def job_start(*, actor: Actor, version: ModelVersion, kind: str,
              artifact: Artifact | None = None, force: bool = False
              ) -> tuple[PackagingJob, bool]:
    """Queue a job; returns (job, created). Without `force`, the same kind on the same input
    (by sha256) returns the job already running or the one that already succeeded."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    if kind not in PackagingJob.Kind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(PackagingJob.Kind.values)}.",
                               field="kind")
    source = _input(version, kind, artifact)
    if source is None:
        raise Conflict(f"Version {version.version} has no artifact to {kind}.",
                       code="no_input_artifact")
    digest = _input_digest(version, kind, source)
    existing = PackagingJob.objects.filter(version=version, kind=kind, input_sha256=digest)
    active = existing.filter(status__in=(Status.QUEUED, Status.RUNNING)).first()
    if active is not None:
        return active, False
    if not force:
        done = existing.filter(status=Status.SUCCEEDED).order_by("-finished_at").first()
        if done is not None:
            return done, False
    now = timezone.now()
    job = insert_or_conflict(lambda: PackagingJob.objects.create(
        version=version, artifact=source, kind=kind, input_sha256=digest, forced=force,
        requested_by=actor.user if actor.user_id is not None else None, created_at=now,
        updated_at=now), "The same job was started at the same moment; retry.", "job_conflict")
    audit.record(actor=actor, action="job.started", target=job,
                 registered_model=version.registered_model,
                 details={"kind": kind, "version": version.version, "artifact": source.filename,
                          "sha256": source.sha256, "forced": force})
    from registry.tasks import run_job

    enqueue_on_commit(run_job, job.pk)
    return job, True


@transaction.atomic
def job_cancel(*, actor: Actor, job: PackagingJob) -> PackagingJob:
    permissions.require(actor.user, Perm.CHANGE, job.version.registered_model)
    job = PackagingJob.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise Conflict(f"The job is {job.status}; only a queued or running job can be "
                       "cancelled.", code="job_not_active")
    now = timezone.now()
    job.status, job.finished_at, job.updated_at = Status.CANCELLED, now, now
    job.save(update_fields=["status", "finished_at", "updated_at"])
    audit.record(actor=actor, action="job.cancelled", target=job,
                 registered_model=job.version.registered_model, details={"kind": job.kind})
    return job


# --- The worker's side ----------------------------------------------------------------------

@transaction.atomic
def job_claim(job_id: int, task_id: str) -> PackagingJob | None:
    """Mark the job running (again, if a worker died holding it); None if there is nothing to
    do: the job is gone, finished or cancelled, or another task runs it (the sweeper queued a
    second message for a job whose first one was only late). A message redelivered after its
    worker died carries the same task id and takes the job over."""
    job = (PackagingJob.objects.select_for_update(of=("self",))
           .select_related("version", "version__registered_model", "artifact")
           .filter(pk=job_id).first())
    if job is None or not job.is_active:
        return None
    if job.status == Status.RUNNING and job.task_id != task_id[:64]:
        return None
    now = timezone.now()
    job.status, job.task_id, job.updated_at = Status.RUNNING, task_id[:64], now
    job.started_at = job.started_at or now
    job.attempts += 1
    job.save(update_fields=["status", "task_id", "updated_at", "started_at", "attempts"])
    return job


class Cancelled(Exception):
    """The job was cancelled while it ran: stop without writing results."""


def job_progress(job: PackagingJob, progress: int, step: str, line: str = "") -> None:
    """Record progress in its own short transaction (so the UI sees it at once); raise
    Cancelled if the job was cancelled meanwhile."""
    now = timezone.now()
    log = (job.log + f"{now:%H:%M:%S} {line or step}\n")[-MAX_LOG:]
    updated = PackagingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(
        progress=max(0, min(100, progress)), step=step[:200], updated_at=now, log=log)
    if not updated:
        raise Cancelled()
    job.log = log


@transaction.atomic
def job_finish(job: PackagingJob, result: dict[str, Any], *, failed: str = "") -> None:
    locked = PackagingJob.objects.select_for_update().get(pk=job.pk)
    if locked.status != Status.RUNNING:
        raise Cancelled()
    now = timezone.now()
    locked.status = Status.FAILED if failed else Status.SUCCEEDED
    locked.result, locked.error, locked.progress = result, failed[:5000], 100 if not failed \
        else locked.progress
    locked.finished_at = locked.updated_at = now
    locked.log = (job.log + f"{now:%H:%M:%S} {'failed: ' + failed if failed else 'done'}\n"
                  )[-MAX_LOG:]
    locked.save()
    audit.record(actor=Actor.system("worker"), action=f"job.{locked.status}", target=locked,
                 registered_model=job.version.registered_model,
                 details={"kind": locked.kind, "version": job.version.version,
                          "error": failed[:300], "attempts": locked.attempts})


def artifacts_clearance(version: ModelVersion,
                        artifacts: list[Artifact] | None = None) -> list[tuple[Artifact, str]]:
    """Each file of the version (or the given ones) with why it is not cleared to load or
    ship, "" when it is: cleared means an administrator trusted it, or the newest inspection
    of its bytes completed with the verdict safe. Pending, running, cancelled or failed
    inspections, and files never inspected, are not cleared (fail closed). Two queries."""
    files = list(version.artifacts.order_by("filename")) if artifacts is None else artifacts
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for sha256, status, result in (PackagingJob.objects.filter(
            version=version, kind=Kind.INSPECT, input_sha256__in={a.sha256 for a in files})
            .order_by("-created_at", "-pk").values_list("input_sha256", "status", "result")):
        newest.setdefault(sha256, (status, result or {}))
    out = []
    for artifact in files:
        status, result = newest.get(artifact.sha256, ("", {}))
        scan = result.get("scan") or {}
        verdict = scan.get("verdict") if isinstance(scan, dict) else None
        if artifact.trusted_at is not None:
            reason = ""
        elif not status:
            reason = "never inspected"
        elif status != Status.SUCCEEDED:
            reason = f"inspection {status}"
        elif verdict != "safe":
            found = (scan.get("dangerous") or scan.get("unknown") or scan.get("problems")
                     or [scan.get("note") or "no verdict"])
            reason = f"{verdict or 'no verdict'}: {', '.join(map(str, found))[:200]}"
        else:
            reason = ""
        out.append((artifact, reason))
    return out


def jobs_sweep() -> dict[str, int]:
    """Queue again the jobs a lost message left behind: queued and untouched for SWEEP_AFTER
    seconds (the broker lost the message or was down when it was sent), or running with no
    word since the hard time limit passed (its worker died and the broker forgot the message,
    e.g. a Redis restart). A job that lost its worker JOB_MAX_ATTEMPTS times fails instead."""
    from registry.tasks import run_job

    now = timezone.now()
    queued = list(PackagingJob.objects.filter(
        status=Status.QUEUED, updated_at__lt=now - timedelta(seconds=settings.SWEEP_AFTER))
        .values_list("pk", flat=True))
    lost = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + settings.SWEEP_AFTER)
    failed = 0
    for job in PackagingJob.objects.filter(status=Status.RUNNING, updated_at__lt=lost):
        with transaction.atomic():
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                try:
                    job_finish(job, {}, failed=f"The job lost its worker {job.attempts} times.")
                    failed += 1
                except Cancelled:
                    pass
                continue
            # Queued again with no task: the next message to arrive takes it.
            if PackagingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(
                    status=Status.QUEUED, task_id="", updated_at=now):
                queued.append(job.pk)
    for pk in queued:  # outside a transaction: sent now, a broker error logged (robust)
        enqueue_on_commit(run_job, pk)
    return {"requeued": len(queued), "failed": failed}
