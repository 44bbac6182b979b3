"""Packaging jobs: start (idempotent per kind and input; a bundle's input is everything it
packs), cancel, and the worker's side of claiming a job, reporting progress, recording an
inspection's verdict and finishing it. The work itself is in registry/packaging/, which calls
these; the Celery task is registry.tasks.run_job, sent by name (core.tasks)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.compiled import CompiledQuery
from core.errors import Conflict, ValidationFailed
from core.permissions import Perm
from core.tasks import enqueue_on_commit
from registry.models import Artifact, ModelVersion, PackagingJob
from registry.models.packaging import ACTIVE
from registry.services.common import insert_or_conflict
from registry.signals import bundle_files

Status = PackagingJob.Status
Kind = PackagingJob.Kind
F = Artifact.Format
MAX_LOG = 20_000
RUN_JOB = "registry.tasks.run_job"  # the Celery task that runs a job (registry/tasks.py)
# The formats each kind works on, to pick its input when the caller names none.
INPUT_FORMATS: dict[str, tuple[str, ...]] = {
    Kind.TORCHSCRIPT: (F.TORCHSCRIPT,),
    **{
        k: (F.PICKLE, F.JOBLIB, F.SKOPS)
        for k in (
            Kind.CONVERT_ONNX,
            Kind.COMPARE_FORMATS,
            Kind.INFER_SIGNATURE,
            Kind.BUNDLE,
            Kind.BENTOML,
        )
    },
}


def _input(version: ModelVersion, kind: str, artifact: Artifact | None) -> Artifact | None:
    if artifact is not None:
        if artifact.version_id != version.pk:
            raise ValidationFailed("That artifact belongs to another version.", field="artifact")
        return artifact
    # Default input: the version's newest original (not derived) artifact, in a format the
    # kind works on if there is one (else the job says why it cannot use the file).
    originals = version.artifacts.filter(derived_from__isnull=True).order_by("-created_at", "-pk")
    formats = INPUT_FORMATS.get(kind)
    return (formats and originals.filter(format__in=formats).first()) or originals.first()


def bundle_extras(version: ModelVersion) -> list[tuple[str, bytes]]:
    """The files other apps add to the version's bundle (registry.signals.bundle_files)."""
    files: list[tuple[str, bytes]] = []
    for _receiver, response in bundle_files.send(sender=ModelVersion, version=version):
        # django-stubs types a receiver's response as str | None; these return file lists.
        files.extend(cast("list[tuple[str, bytes]] | None", response) or [])
    return files


def bundle_included(version: ModelVersion, source: Artifact) -> list[Artifact]:
    """The version's other files that travel with the model (never an earlier bundle or
    BentoML archive: those are packagings of the version, not its files)."""
    return list(
        version.artifacts.exclude(pk=source.pk)
        .exclude(format__in=(Artifact.Format.MLFLOW, Artifact.Format.BENTOML))
        .order_by("filename")
    )


def _packed_digest(parts: list[object], version: ModelVersion) -> str:
    """The digest of what a packaging job packs: `parts`, then the files other apps add (the
    model card)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode() + b"\0")
    for name, data in bundle_extras(version):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def bundle_input_digest(version: ModelVersion, source: Artifact) -> str:
    """What a bundle is built from: the same digest means the same bundle, so starting the
    job again returns the earlier one; a new file, signature or card revision makes a new one."""
    return _packed_digest(
        [
            source.sha256,
            *(a.sha256 for a in bundle_included(version, source)),
            json.dumps(version.signature, sort_keys=True),
            json.dumps(version.pip_requirements),
            version.python_version,
        ],
        version,
    )


def _input_digest(version: ModelVersion, kind: str, source: Artifact) -> str:
    """What makes two jobs the same: the input file, and for a bundle or a BentoML archive
    everything it packs (a BentoML archive: the model, its signature and its card)."""
    if kind == Kind.BUNDLE:
        return bundle_input_digest(version, source)
    if kind == Kind.BENTOML:
        return _packed_digest(
            ["bentoml", source.sha256, json.dumps(version.signature, sort_keys=True)], version
        )
    return source.sha256


def _reusable(force: bool, version: int, kind: str, digest: str) -> QuerySet[PackagingJob]:
    """What may answer a start instead of a new job, in one statement: the active job (locked;
    at most one by constraint) before the newest success (only without `force`)."""
    return (
        PackagingJob.objects.filter(
            version=version,
            kind=kind,
            input_sha256=digest,
            status__in=[*ACTIVE] if force else [*ACTIVE, Status.SUCCEEDED],
        )
        .select_for_update(of=("self",))
        .select_related("version__registered_model")
        .order_by(Case(When(status__in=ACTIVE, then=Value(0)), default=Value(1)), "-finished_at")[
            :1
        ]
    )


_REUSABLE: CompiledQuery[PackagingJob] = CompiledQuery(_reusable)


def job_start_within(
    *,
    actor: Actor,
    version: ModelVersion,
    kind: str,
    artifact: Artifact | None = None,
    force: bool = False,
) -> tuple[PackagingJob, bool]:
    """Queue a job; returns (job, created). Without `force`, the same kind on the same input
    (by sha256) returns the job already running or the one that already succeeded.

    Runs in the caller's transaction with no savepoint of its own, so a refusal rolls all of
    it back (an upload queueing its file's inspection); `job_start` is the same in a
    transaction of its own."""
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("job_start_within needs a transaction.")
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    if kind not in PackagingJob.Kind.values:
        raise ValidationFailed(
            f"kind must be one of {', '.join(PackagingJob.Kind.values)}.", field="kind"
        )
    source = _input(version, kind, artifact)
    if source is None:
        raise Conflict(
            f"Version {version.version} has no artifact to {kind}.", code="no_input_artifact"
        )
    digest = _input_digest(version, kind, source)
    existing = PackagingJob.objects.filter(version=version, kind=kind, input_sha256=digest)
    now = timezone.now()
    found = _REUSABLE.first(force, version=version.pk, kind=kind, digest=digest)
    if found is not None and found.status in ACTIVE:
        # A running job whose worker went silent is not returned as if it were working: asking
        # again starts its next attempt (or, out of attempts, it fails and a new job starts).
        if not _silent_since(found, now) or _recover(found, actor, now):
            return found, False
        found = (
            None
            if force
            else existing.filter(status=Status.SUCCEEDED).order_by("-finished_at").first()
        )
    if found is not None:
        verdict = (found.result.get("scan") or {}).get("verdict")
        if kind == Kind.INSPECT and verdict and source.safety != verdict:
            artifact_safety_set(source, verdict)  # the same bytes, inspected before
        return found, False
    job = insert_or_conflict(
        lambda: PackagingJob.objects.create(
            version=version,
            artifact=source,
            kind=kind,
            input_sha256=digest,
            forced=force,
            requested_by=acting_user(actor),
            created_at=now,
            updated_at=now,
        ),
        "The same job was started at the same moment; retry.",
        "job_conflict",
    )
    audit.record(
        actor=actor,
        action="job.started",
        target=job,
        registered_model=version.registered_model,
        details={
            "kind": kind,
            "version": version.version,
            "artifact": source.filename,
            "sha256": source.sha256,
            "forced": force,
        },
    )
    enqueue_on_commit(RUN_JOB, job.pk)
    return job, True


job_start = transaction.atomic(job_start_within)


@transaction.atomic
def job_cancel(*, actor: Actor, job: PackagingJob) -> PackagingJob:
    permissions.require(actor.user, Perm.CHANGE, job.version.registered_model)
    job = PackagingJob.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise Conflict(
            f"The job is {job.status}; only a queued or running job can be cancelled.",
            code="job_not_active",
        )
    now = timezone.now()
    job.status, job.finished_at, job.updated_at = Status.CANCELLED, now, now
    job.save(update_fields=["status", "finished_at", "updated_at"])
    audit.record(
        actor=actor,
        action="job.cancelled",
        target=job,
        registered_model=job.version.registered_model,
        details={"kind": job.kind},
    )
    _release_waiting(job)
    return job


# --- The worker's side ----------------------------------------------------------------------
#
# An attempt is one claim of the job by a task; `attempts` numbers them. Every write of the
# worker (progress, heartbeat, derived files, the result) names its attempt and is refused
# once the job is no longer running under it (cancelled, or queued again after its worker
# went silent and perhaps claimed by a new attempt): a worker that was only slow and comes
# back can never complete a job a second time.


class Cancelled(Exception):
    """The job was cancelled, or taken over by a later attempt, while this attempt ran: stop
    without writing results."""


def _current(job: PackagingJob) -> QuerySet[PackagingJob]:
    """The job's row if it still runs under `job`'s attempt."""
    return PackagingJob.objects.filter(pk=job.pk, status=Status.RUNNING, attempts=job.attempts)


def _blocker(job: PackagingJob) -> PackagingJob | None:
    """The job `job` must wait for: for a bundle, an ONNX conversion of the same input that
    is queued or running (the bundle ships its flavor). Locked, so that a conversion
    finishing meanwhile either sees this job waiting or is seen as finished."""
    if job.kind != Kind.BUNDLE or job.artifact is None:
        return None
    return (
        PackagingJob.objects.select_for_update()
        .filter(
            version_id=job.version_id,
            kind=Kind.CONVERT_ONNX,
            status__in=ACTIVE,
            input_sha256=job.artifact.sha256,
        )
        .order_by("pk")
        .first()
    )


@transaction.atomic
def job_claim(job_id: int, task_id: str) -> PackagingJob | None:
    """Start the job's next attempt; None if there is nothing to do: the job is gone,
    finished or cancelled, another task runs it (the sweeper queued a second message for a
    job whose first one was only late), or it waits for another job (whose end sends it
    again). A message redelivered after its worker died carries the same task id and takes
    the job over, as a new attempt."""
    job = (
        PackagingJob.objects.select_for_update(of=("self",))
        .select_related("version", "version__registered_model", "artifact")
        .filter(pk=job_id)
        .first()
    )
    if job is None or not job.is_active:
        return None
    if job.status == Status.RUNNING and job.task_id != task_id[:64]:
        return None
    now = timezone.now()
    if job.status == Status.RUNNING and job.attempts >= settings.JOB_MAX_ATTEMPTS:
        # Redelivered once more after its worker died again (a model that kills its worker
        # would otherwise come back for ever).
        _end(job, {}, log=job.log, failed=_gave_up(job, "its message came back"))
        return None
    if job.status == Status.QUEUED and (blocker := _blocker(job)) is not None:
        if job.waits_for_id != blocker.pk:
            job.waits_for, job.updated_at = blocker, now
            job.log = _log_line(
                job.log,
                now,
                f"waiting for {blocker.get_kind_display()} #{blocker.pk} of the same file",
            )
            job.step = f"waiting for job #{blocker.pk}"
            job.save(update_fields=["waits_for", "updated_at", "log", "step"])
        return None
    job.status, job.task_id, job.updated_at = Status.RUNNING, task_id[:64], now
    job.started_at, job.heartbeat_at = job.started_at or now, now
    job.attempts += 1
    if job.attempts > 1:
        job.log = _log_line(job.log, now, f"attempt {job.attempts}")
    job.save(
        update_fields=[
            "status",
            "task_id",
            "updated_at",
            "started_at",
            "heartbeat_at",
            "attempts",
            "log",
        ]
    )
    return job


def _log_line(log: str, now: Any, line: str) -> str:
    return (log + f"{now:%H:%M:%S} {line}\n")[-MAX_LOG:]


def job_heartbeat(job: PackagingJob) -> bool:
    """One sign of life from the worker process running this attempt; False once the job no
    longer runs under it (the caller stops beating)."""
    return bool(_current(job).update(heartbeat_at=timezone.now()))


def job_progress(job: PackagingJob, progress: int, step: str, line: str = "") -> None:
    """Record progress in its own short transaction (so the UI sees it at once); raise
    Cancelled if the job was cancelled or taken over meanwhile."""
    now = timezone.now()
    log = _log_line(job.log, now, line or step)
    updated = _current(job).update(
        progress=max(0, min(100, progress)),
        step=step[:200],
        updated_at=now,
        heartbeat_at=now,
        log=log,
    )
    if not updated:
        raise Cancelled()
    job.log = log


def job_require_current(job: PackagingJob) -> None:
    """Lock the job's row and raise Cancelled unless it still runs under `job`'s attempt: a
    file a job derives is stored only by the attempt that holds the job, in the transaction
    that inserts it."""
    if not _current(job).select_for_update().exists():
        raise Cancelled()


def artifact_safety_set(artifact: Artifact, verdict: str) -> None:
    """Record an inspection verdict (safe, suspicious, unsafe) on the artifact and on every
    file of its version with the same bytes: an inspection is of the bytes, and a second
    file with them (a bundle rebuilt after its first file was deleted, a copy under another
    name) reuses it instead of showing no verdict for ever."""
    Artifact.objects.filter(version_id=artifact.version_id, sha256=artifact.sha256).update(
        safety=verdict
    )
    artifact.safety = verdict


@transaction.atomic
def job_finish(job: PackagingJob, result: dict[str, Any], *, failed: str = "") -> None:
    """End this attempt's job as succeeded (or failed with `failed`); raise Cancelled if the
    job no longer runs under this attempt."""
    locked = (
        PackagingJob.objects.select_for_update(of=("self",))
        .select_related("version__registered_model")
        .get(pk=job.pk)
    )
    if locked.status != Status.RUNNING or locked.attempts != job.attempts:
        raise Cancelled()
    _end(locked, result, failed=failed, log=job.log)


def _end(locked: PackagingJob, result: dict[str, Any], *, failed: str, log: str) -> None:
    now = timezone.now()
    locked.status = Status.FAILED if failed else Status.SUCCEEDED
    locked.result, locked.error = result, failed[:5000]
    locked.progress = locked.progress if failed else 100
    locked.finished_at = locked.updated_at = now
    locked.log = _log_line(log, now, f"failed: {failed}" if failed else "done")
    locked.save()
    audit.record(
        actor=Actor.system("worker"),
        action=f"job.{locked.status}",
        target=locked,
        registered_model=locked.version.registered_model,
        details={
            "kind": locked.kind,
            "version": locked.version.version,
            "error": failed[:300],
            "attempts": locked.attempts,
        },
    )
    _release_waiting(locked)


def _release_waiting(job: PackagingJob) -> None:
    """Send the jobs that waited for `job` to a worker, once its end commits. Their rows are
    not touched here (a bundle being claimed locks its row, then this job's: no cycle)."""
    for pk in job.waiting_jobs.filter(status=Status.QUEUED).values_list("pk", flat=True):
        enqueue_on_commit(RUN_JOB, pk)


def _silent_since(job: PackagingJob, now: Any) -> int:
    """Seconds since the running job's worker last gave a sign of life, if that is longer
    than JOB_HEARTBEAT_TIMEOUT (its worker is gone); 0 otherwise."""
    if job.status != Status.RUNNING:
        return 0
    silent = int((now - (job.heartbeat_at or job.updated_at)).total_seconds())
    return silent if silent > settings.JOB_HEARTBEAT_TIMEOUT else 0


def _silent(now: Any) -> Q:
    cutoff = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    return Q(status=Status.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff)
    )


def _gave_up(job: PackagingJob, how: str) -> str:
    return (
        f"The job lost its worker {job.attempts} times ({how}); given up after "
        f"JOB_MAX_ATTEMPTS={settings.JOB_MAX_ATTEMPTS} attempts."
    )


def _recover(job: PackagingJob, actor: Actor, now: Any) -> bool:
    """Queue again (True) the running job, locked by the caller, whose worker went silent;
    or fail it for good (False) once it has had JOB_MAX_ATTEMPTS attempts. Either way the
    silent attempt can write nothing more (see _current). Audited."""
    silent = _silent_since(job, now)
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        _end(job, {}, log=job.log, failed=_gave_up(job, f"no heartbeat for {silent} s"))
        return False
    job.log = _log_line(
        job.log,
        now,
        f"attempt {job.attempts}: no heartbeat from its worker for {silent} s; queued again",
    )
    job.status, job.task_id, job.heartbeat_at, job.updated_at = Status.QUEUED, "", None, now
    job.save(update_fields=["status", "task_id", "heartbeat_at", "updated_at", "log"])
    audit.record(
        actor=actor,
        action="job.requeued",
        target=job,
        registered_model=job.version.registered_model,
        details={
            "kind": job.kind,
            "version": job.version.version,
            "attempts": job.attempts,
            "silent_seconds": silent,
        },
    )
    enqueue_on_commit(RUN_JOB, job.pk)
    return True


def artifacts_clearance(
    version: ModelVersion, artifacts: list[Artifact] | None = None
) -> list[tuple[Artifact, str]]:
    """Each file of the version (or the given ones) with why it is not cleared to load or
    ship, "" when it is: cleared means an administrator trusted it, or the newest inspection
    of its bytes completed with the verdict safe. Pending, running, cancelled or failed
    inspections, and files never inspected, are not cleared (fail closed). Two queries."""
    files = list(version.artifacts.order_by("filename")) if artifacts is None else artifacts
    return artifacts_clearance_many({version.pk: files})[version.pk]


def artifacts_clearance_many(
    files: dict[int, list[Artifact]],
) -> dict[int, list[tuple[Artifact, str]]]:
    """artifacts_clearance for the files of many versions (by version pk) in one query."""
    newest: dict[tuple[int, str], tuple[str, dict[str, Any]]] = {}
    shas = {a.sha256 for found in files.values() for a in found}
    if shas:
        for version_id, sha256, status, result in (
            PackagingJob.objects.filter(
                version__in=list(files), kind=Kind.INSPECT, input_sha256__in=shas
            )
            .order_by("-created_at", "-pk")
            .values_list("version_id", "input_sha256", "status", "result")
        ):
            newest.setdefault((version_id, sha256), (status, result or {}))
    return {
        version_id: [
            (a, _uncleared(a, *newest.get((version_id, a.sha256), ("", {})))) for a in found
        ]
        for version_id, found in files.items()
    }


def _uncleared(artifact: Artifact, status: str, result: dict[str, Any]) -> str:
    scan = result.get("scan") or {}
    verdict = scan.get("verdict") if isinstance(scan, dict) else None
    if artifact.trusted_at is not None:
        return ""
    if not status:
        return "never inspected"
    if status != Status.SUCCEEDED:
        return f"inspection {status}"
    if verdict != "safe":
        found = (
            scan.get("dangerous")
            or scan.get("unknown")
            or scan.get("problems")
            or [scan.get("note") or "no verdict"]
        )
        return f"{verdict or 'no verdict'}: {', '.join(map(str, found))[:200]}"
    return ""


def jobs_sweep() -> dict[str, int]:
    """Queue again what a lost message or a dead worker left behind: jobs queued and
    untouched for SWEEP_AFTER seconds (the broker lost the message or was down when it was
    sent; not those waiting for another job), and running jobs whose worker sent no
    heartbeat for JOB_HEARTBEAT_TIMEOUT seconds (killed, out of memory, its machine gone). A
    job that lost its worker JOB_MAX_ATTEMPTS times fails instead."""
    now = timezone.now()
    queued = list(
        PackagingJob.objects.filter(
            status=Status.QUEUED, updated_at__lt=now - timedelta(seconds=settings.SWEEP_AFTER)
        )
        .exclude(waits_for__status__in=ACTIVE)
        .values_list("pk", flat=True)
    )
    requeued = failed = 0
    for pk in PackagingJob.objects.filter(_silent(now)).values_list("pk", flat=True):
        with transaction.atomic():
            job = (
                PackagingJob.objects.select_for_update(of=("self",))
                .select_related("version__registered_model")
                .filter(_silent(now), pk=pk)
                .first()
            )
            if job is None:  # it gave a sign of life, or ended, meanwhile
                continue
            if _recover(job, Actor.system("worker"), now):
                requeued += 1
            else:
                failed += 1
    for pk in queued:  # outside a transaction: sent now, a broker error logged (robust)
        enqueue_on_commit(RUN_JOB, pk)
    return {"requeued": len(queued) + requeued, "failed": failed}
