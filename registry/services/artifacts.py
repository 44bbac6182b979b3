"""Artifacts: streamed, size-limited, content-addressed uploads; streamed downloads.

The web process reads uploaded bytes only to hash, count and store them, plus a few header
bytes (and a zip's directory) to name the format. It never deserialises a model file.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import re
import struct
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import IO, Protocol

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Conflict, TooLarge, ValidationFailed
from core.permissions import Perm
from registry import validation
from registry.governed import governor
from registry.models import Artifact, ModelVersion, PackagingJob
from registry.services.common import require_admin, version_locked
from registry.services.jobs import job_require_current, job_start_within

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
HEAD = 64


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def artifact_storage() -> Storage:
    return storages["artifacts"]


def storage_key(sha256: str) -> str:
    """Where a blob lives: derived from its content only, never from a client's filename."""
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def filename_check(filename: object) -> str:
    if not isinstance(filename, str) or not filename:
        raise ValidationFailed("A filename is required.", field="filename", code="invalid_filename")
    if len(filename) > 255:
        raise ValidationFailed(
            "Filenames are at most 255 characters.", field="filename", code="invalid_filename"
        )
    if "/" in filename or "\\" in filename or ".." in filename or filename.startswith("."):
        raise ValidationFailed(
            "Filenames may not contain path separators or '..', or start with '.'.",
            field="filename",
            code="invalid_filename",
        )
    if validation.has_control_chars(filename) or filename != filename.strip():
        raise ValidationFailed(
            "Filenames may not contain control characters or surrounding white space.",
            field="filename",
            code="invalid_filename",
        )
    return filename


def max_upload_size() -> int:
    return settings.ARTIFACT_MAX_UPLOAD_SIZE


def upload_too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"The file is larger than the upload limit of {limit:,} bytes.",
        code="upload_too_large",
        extra={"limit": limit},
    )


def check_declared_size(declared_size: int | None) -> None:
    """Refuse at once an upload whose Content-Length already exceeds the limit."""
    limit = max_upload_size()
    if declared_size is not None and declared_size > limit:
        raise upload_too_large(limit)


def spool(chunks: Iterable[bytes], *, limit: int) -> tuple[IO[bytes], str, int, bytes]:
    """Copy a stream to a temporary file, hashing as it goes; stop as soon as the limit is
    passed. Returns (file positioned at 0, sha256, size, first bytes)."""
    settings.UPLOAD_SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    # Returned open to the caller, who closes it (and so deletes it) in a with-block.
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115
        dir=settings.UPLOAD_SPOOL_DIR, prefix="upload-", delete=True
    )
    digest, size, head = hashlib.sha256(), 0, b""
    try:
        for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > limit:
                raise upload_too_large(limit)
            if len(head) < HEAD:
                head += chunk[: HEAD - len(head)]
            digest.update(chunk)
            tmp.write(chunk)
        tmp.flush()
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp, digest.hexdigest(), size, head


def spool_sweep() -> int:
    """Delete spool files (this module's and Django's upload temporary files) last written
    more than UPLOAD_SPOOL_MAX_AGE seconds ago: a killed upload leaves its file behind, and
    a live upload writes to its file far more often. Returns how many were removed."""
    cutoff = time.time() - settings.UPLOAD_SPOOL_MAX_AGE
    removed = 0
    try:
        entries = list(os.scandir(settings.UPLOAD_SPOOL_DIR))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if (
                entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ):
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:  # its upload ended (and removed it) meanwhile
            continue
    if removed:
        logger.info("Removed %d stale upload spool files", removed)
    return removed


def read_chunks(stream: Readable, size: int = CHUNK) -> Iterable[bytes]:
    while chunk := stream.read(size):
        yield chunk


def detect_format(head: bytes, filename: str, file: IO[bytes], size: int) -> str:
    """Name the format from magic bytes, the extension and (for zips) the member names."""
    suffix = PurePosixPath(filename).suffix.lower()
    F = Artifact.Format
    pickle_suffix = suffix in (".pkl", ".pickle", ".joblib", ".jbl")
    # Eight bytes and a "{" are only a hint (a pickle can begin so): never for a pickle's
    # name, and the inspection checks the whole header before calling the file inert.
    if len(head) >= 9 and head[8:9] == b"{" and not pickle_suffix:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len <= size - 8:
            return F.SAFETENSORS
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(file) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return F.OTHER
        finally:
            file.seek(0)
        if "MLmodel" in names:
            return F.MLFLOW
        if "schema.json" in names:
            return F.SKOPS
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return F.TORCHSCRIPT
        return F.OTHER
    if suffix in (".joblib", ".jbl") and head[:1] in (
        b"\x80",
        b"\x78",
        b"\x1f",
        b"\x42",
        b"\xfd",
        b"\x04",
    ):
        return F.JOBLIB
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return F.PICKLE
    if suffix in (".pkl", ".pickle") and head[:1] in (b"(", b"]", b"}", b"c"):
        return F.PICKLE  # protocol 0/1 pickles have no header
    if suffix == ".onnx" and head[:1] == b"\x08":
        return F.ONNX
    if suffix == ".bentomodel" and head.startswith(b"\xfd7zXZ\x00"):
        return F.BENTOML  # what `bentoml models export` writes: a tar, xz-compressed
    return F.OTHER


_MEDIA_TYPES = {
    "onnx": "application/onnx",
    "safetensors": "application/octet-stream",
    "skops": "application/zip",
    "torchscript": "application/zip",
    "mlflow": "application/zip",
    "bentoml": "application/x-xz",
}


# Types that describe how a request body was encoded, never a file: curl --data-binary sends
# the first unless told otherwise, and a client may send the others by mistake.
# type/subtype as RFC 9110 spells them (tokens): no spaces, no control characters, which a
# download's Content-Type header could not carry, nor a PostgreSQL text a NUL.
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
_ENVELOPE_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "multipart/mixed"}


def _media_type(given: str | None, fmt: str, filename: str) -> str:
    """The type the client declared, unless it names an encoding rather than a file; else the
    detected format's, else the file name's guess, else application/octet-stream."""
    if given:
        main = given.split(";", 1)[0].strip().lower()
        if main not in _ENVELOPE_TYPES and len(main) <= 255 and _MEDIA_TYPE.fullmatch(main):
            return main
    if fmt in _MEDIA_TYPES:
        return _MEDIA_TYPES[fmt]
    return mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"


def artifact_upload(
    *,
    actor: Actor,
    version: ModelVersion,
    filename: str,
    chunks: Iterable[bytes],
    media_type: str | None = None,
    declared_size: int | None = None,
    derived_from: Artifact | None = None,
    derived_by_job: PackagingJob | None = None,
) -> Artifact:
    """Store a file for `version`.

    The bytes stream to a spool file (never whole in memory) while the sha256 is computed;
    the upload stops as soon as it passes ARTIFACT_MAX_UPLOAD_SIZE. Only then does a short
    transaction insert the row and its audit event, so no lock is held while bytes arrive.
    A file a job derived (`derived_by_job`) is outside the version's content digest and may
    be added to a sealed version; any other file is refused there (409 version_sealed).
    Every file, derived or not, is inspected by a worker.
    """
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    filename = filename_check(filename)
    check_declared_size(declared_size)
    if version.is_deleted:
        raise Conflict("A deleted version cannot receive artifacts.", code="version_deleted")
    if derived_by_job is None:  # refuse before reading any bytes; checked again under lock
        governor().require_unsealed(version, "files")
    if Artifact.objects.filter(version=version, filename=filename).exists():
        raise Conflict(
            f"Version {version.version} already has a file named '{filename}'.",
            code="artifact_exists",
            field="filename",
        )
    tmp, sha256, size, head = spool(chunks, limit=max_upload_size())
    with tmp:
        fmt = detect_format(head, filename, tmp, size)
        key = storage_key(sha256)
        storage = artifact_storage()
        if not storage.exists(key):
            key = storage.save(key, File(tmp, name=key))
    try:
        with transaction.atomic():
            artifact = _artifact_insert(
                actor=actor,
                version=version,
                filename=filename,
                size=size,
                sha256=sha256,
                fmt=fmt,
                key=key,
                media_type=_media_type(media_type, fmt, filename),
                derived_from=derived_from,
                derived_by_job=derived_by_job,
            )
            # Every file is inspected by a worker (sha256, format, pickle imports), files a
            # job derived included: readiness passes only on a completed, safe inspection.
            job_start_within(actor=actor, version=version, kind="inspect", artifact=artifact)
    except BaseException:
        blobs_release([key])
        raise
    return artifact


@transaction.atomic
def artifact_copy(*, actor: Actor, version: ModelVersion, source: Artifact) -> Artifact:
    """Give `version` a file another version stores (MLflow's copy_model_version): a new row
    on the same content-addressed blob, so no bytes move, under `version`'s own content
    digest (approvals of the copy are bound to these files, not to whatever the original
    holds later). Needs `change` on the target and `view` on the source's model; refused on
    a sealed target like an upload, and inspected like one."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    permissions.require(actor.user, Perm.VIEW, source.version.registered_model)
    if source.derived:
        raise ValidationFailed(
            "Only files a user stored are copied; derived files are rebuilt by jobs.",
            field="artifact",
        )
    artifact = _artifact_insert(
        actor=actor,
        version=version,
        filename=source.filename,
        size=source.size,
        sha256=source.sha256,
        fmt=source.format,
        key=source.storage_key,
        media_type=source.media_type,
        derived_from=None,
        derived_by_job=None,
        copied_from=source,
    )
    job_start_within(actor=actor, version=version, kind="inspect", artifact=artifact)
    return artifact


def _artifact_insert(
    *,
    actor: Actor,
    version: ModelVersion,
    filename: str,
    size: int,
    sha256: str,
    fmt: str,
    key: str,
    media_type: str,
    derived_from: Artifact | None,
    derived_by_job: PackagingJob | None,
    copied_from: Artifact | None = None,
) -> Artifact:
    locked = version_locked(version)
    if locked.is_deleted:
        raise Conflict("A deleted version cannot receive artifacts.", code="version_deleted")
    if derived_by_job is None:
        governor().require_unsealed(locked, "files")
    else:  # only the attempt that holds the job stores what it derived (not a stale worker)
        job_require_current(derived_by_job)
    if Artifact.objects.filter(version=locked, filename=filename).exists():
        raise Conflict(
            f"Version {locked.version} already has a file named '{filename}'.",
            code="artifact_exists",
            field="filename",
        )
    derived = derived_by_job is not None
    artifact = Artifact.objects.create(
        version=locked,
        filename=filename,
        size=size,
        sha256=sha256,
        media_type=media_type,
        format=fmt,
        storage_key=key,
        derived_from=derived_from,
        derived=derived,
        derived_by_job=derived_by_job,
        input_digest=governor().content_digest(locked) if derived else "",
        created_by=acting_user(actor),
        created_at=timezone.now(),
    )
    copied = (
        {"copied_from": f"{copied_from.version.registered_model} v{copied_from.version.version}"}
        if copied_from is not None
        else {}
    )
    audit.record(
        actor=actor,
        action="artifact.derived"
        if derived
        else "artifact.copied"
        if copied
        else "artifact.uploaded",
        target=artifact,
        registered_model=version.registered_model,
        details={
            "version": locked.version,
            "filename": filename,
            "size": size,
            "sha256": sha256,
            "format": fmt,
            **(
                {"job": derived_by_job.pk, "input_digest": artifact.input_digest}
                if derived_by_job is not None
                else {}
            ),
            **copied,
        },
    )
    return artifact


def artifact_open(*, actor: Actor, artifact: Artifact) -> IO[bytes]:
    """Open an artifact's bytes for streaming, after the permission check."""
    permissions.require(actor.user, Perm.VIEW, artifact.version.registered_model)
    return artifact_storage().open(artifact.storage_key, "rb")


def blobs_release(keys: list[str]) -> None:
    """After commit, delete stored blobs that no artifact row references any more."""
    keys = sorted(set(keys))
    if not keys:
        return

    def release() -> None:
        storage = artifact_storage()
        still_used = set(
            Artifact.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True)
        )
        for key in keys:
            if key not in still_used:
                try:
                    storage.delete(key)
                except OSError:  # a missing blob is the state we wanted anyway
                    logger.warning("Could not delete artifact blob %s", key)

    transaction.on_commit(release)


@transaction.atomic
def artifact_trust(*, actor: Actor, artifact: Artifact) -> Artifact:
    """An administrator vouches for a file the scan did not clear, so workers may load it."""
    require_admin(actor, "trust an artifact")
    now = timezone.now()
    Artifact.objects.filter(pk=artifact.pk).update(trusted_at=now, trusted_by=actor.user)
    artifact.refresh_from_db()
    audit.record(
        actor=actor,
        action="artifact.trusted",
        target=artifact,
        registered_model=artifact.version.registered_model,
        details={
            "filename": artifact.filename,
            "sha256": artifact.sha256,
            "safety": artifact.safety,
        },
    )
    return artifact
