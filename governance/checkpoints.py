"""Signed checkpoints of the audit chain's head, kept outside the database (the anchor).

The hash chain alone proves that no event was edited, inserted or removed in the middle; it
cannot tell an emptied table, a cut-off tail or a chain that someone re-hashed from start to
end. A checkpoint can: the head's sequence and hash, signed with AUDIT_CHECKPOINT_KEY and kept
where the database's users cannot write.

- `checkpoint_take()` (the `audit_checkpoint` command and the beat task) signs the head and
  appends it to AUDIT_ANCHOR: a file (one JSON line per checkpoint, fsynced) or
  `s3://bucket/prefix` (one object per checkpoint: objects cannot be appended to). It refuses
  to seal a log that no longer extends the newest anchored checkpoint, so a rewritten log never
  gets a fresh seal.
- `checkpoint_report()` (`verify_audit_log`) checks the chain and that it still holds the
  newest checkpoint's head event unchanged, and says whether anything vouches for the head.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone
from django.utils.crypto import salted_hmac

from core import audit, chain

logger = logging.getLogger(__name__)

FORMAT = "modelgate-audit-checkpoint-v1"
ANCHOR_STORAGE = "audit_anchor"  # the STORAGES entry used when AUDIT_ANCHOR is s3://…

# verify_audit_log's exit statuses.
OK, BROKEN, UNVOUCHED = 0, 1, 2


class AnchorError(Exception):
    """The anchor cannot be read or written."""


class CheckpointRefused(Exception):
    """The log no longer verifies or no longer extends the newest checkpoint: not sealed."""


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    hash: str
    created_at: str
    where: str  # "line 3 of /srv/…" or an object name, for messages


@dataclass(frozen=True)
class Report:
    status: int  # OK, BROKEN or UNVOUCHED
    message: str  # the verdict on the chain (and the checkpoint)
    warning: str = ""  # why nothing vouches for the head (status UNVOUCHED)
    verdict: chain.Verdict | None = None  # the chain's, when it was walked


def _key() -> bytes:
    key = settings.AUDIT_CHECKPOINT_KEY
    if key:
        return key.encode()
    return salted_hmac("modelgate.audit.checkpoint", "key", algorithm="sha256").digest()


def _sign(sequence: int, head: str, created_at: str) -> str:
    return chain.checkpoint_sign(_key(), sequence, head, created_at)


def checkpoint_parse(doc: object, where: str) -> Checkpoint:
    """A checkpoint whose signature holds, or AnchorError saying why not."""
    if not isinstance(doc, dict):
        raise AnchorError(f"{where} is not a Modelgate audit checkpoint.")
    try:
        sequence, head = int(doc["sequence"]), str(doc["hash"])
        created_at, signature = str(doc["created_at"]), str(doc["signature"])
    except (KeyError, TypeError, ValueError):
        raise AnchorError(f"{where} is not a Modelgate audit checkpoint.") from None
    if not hmac.compare_digest(_sign(sequence, head, created_at), signature):
        raise AnchorError(
            f"The checkpoint's signature is wrong at {where} (another key, or "
            f"it was edited or forged): refused."
        )
    return Checkpoint(sequence, head, created_at, where)


def _newest(checkpoints: list[Checkpoint]) -> Checkpoint | None:
    # The highest sequence, not the last line: a replayed older checkpoint must not become
    # the reference after the tail it covered was cut off.
    return max(checkpoints, key=lambda c: (c.sequence, c.created_at), default=None)


# --- Where checkpoints are kept --------------------------------------------------------------


def anchor_configured() -> bool:
    return bool(settings.AUDIT_ANCHOR)


def _is_object_store() -> bool:
    return settings.AUDIT_ANCHOR.startswith("s3://")


def _object_name(doc: dict[str, Any]) -> str:
    # Sorted by name is sorted by sequence, then time.
    stamp = datetime.fromisoformat(str(doc["created_at"])).strftime("%Y%m%dT%H%M%S%fZ")
    return f"checkpoint-{int(doc['sequence']):012d}-{stamp}.json"


def anchor_append(doc: dict[str, Any]) -> str:
    """Keep one signed checkpoint in AUDIT_ANCHOR; returns where it went."""
    line = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
    try:
        if _is_object_store():
            return storages[ANCHOR_STORAGE].save(_object_name(doc), ContentFile(line.encode()))
        return _file_append(Path(settings.AUDIT_ANCHOR), line.encode())
    except OSError as exc:  # boto's errors are not OSErrors; they propagate and fail the task
        raise AnchorError(f"Cannot write to AUDIT_ANCHOR {settings.AUDIT_ANCHOR}: {exc}") from exc


def _file_append(path: Path, line: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        # A manual run and the beat task may append at the same moment.
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn last line stays on its own line (and is reported)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # make the new directory entry durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return str(path)


def checkpoints_read_file(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a file: one JSON document (audit_checkpoint's output) or JSON lines
    (an anchor file). Any line that is not a validly signed checkpoint is refused."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorError(f"Cannot read the checkpoint {path}: {exc}") from None
    try:
        return [checkpoint_parse(json.loads(text), str(path))]
    except ValueError:
        pass  # not one document: JSON lines
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number} of {path}"
        try:
            doc = json.loads(line)
        except ValueError:
            raise AnchorError(f"Cannot read the checkpoint at {where}: not JSON.") from None
        found.append(checkpoint_parse(doc, where))
    return found


def _newest_in_anchor() -> Checkpoint | None:
    if not _is_object_store():
        path = Path(settings.AUDIT_ANCHOR)
        return _newest(checkpoints_read_file(path)) if path.exists() else None
    storage = storages[ANCHOR_STORAGE]
    try:
        names = [n for n in storage.listdir("")[1] if n.startswith("checkpoint-")]
    except FileNotFoundError:
        return None
    if not names:
        return None
    name = max(names)  # objects are named by sequence, see _object_name
    with storage.open(name) as handle:
        try:
            doc = json.loads(handle.read())
        except ValueError:
            raise AnchorError(f"Cannot read the checkpoint object {name}: not JSON.") from None
    checkpoint = checkpoint_parse(doc, f"object {name}")
    if _object_name(doc) != name:  # a copy of an older checkpoint under a newer name
        raise AnchorError(
            f"The object {name} holds the checkpoint of event "
            f"{checkpoint.sequence}, not the one its name says: refused."
        )
    return checkpoint


# --- Taking and checking ---------------------------------------------------------------------


def checkpoint_report(checkpoints: list[Checkpoint] | None = None) -> Report:
    """Verify the chain against the newest of `checkpoints` (default: the anchor's)."""
    try:
        if checkpoints is not None:
            reference = _newest(checkpoints)
        else:
            reference = _newest_in_anchor() if anchor_configured() else None
    except AnchorError as exc:
        return Report(BROKEN, str(exc))
    seen: dict[str, Any] = {}

    def rows() -> Iterator[dict[str, Any]]:
        for row in audit.events():
            if reference is not None and row["sequence"] == reference.sequence:
                seen["hash"] = row["hash"]
            elif reference is not None and row["sequence"] == reference.sequence + 1:
                seen["after"] = row["occurred_at"]
            yield row

    verdict = chain.verify(rows())
    if not verdict.ok:
        return Report(BROKEN, str(verdict), verdict=verdict)
    if reference is None:
        where = (
            "the checkpoint file holds none"
            if checkpoints is not None
            else "AUDIT_ANCHOR holds none yet"
            if anchor_configured()
            else "AUDIT_ANCHOR is not set and no --checkpoint was given"
        )
        return Report(
            UNVOUCHED,
            str(verdict),
            verdict=verdict,
            warning=_empty_or(verdict)
            or (
                f"No checkpoint covers this log ({where}): an emptied or consistently re-hashed "
                "log would pass this check too. Set AUDIT_ANCHOR (celery beat then takes a "
                "checkpoint every AUDIT_CHECKPOINT_INTERVAL seconds) or run audit_checkpoint."
            ),
        )
    if verdict.head_sequence < reference.sequence:
        return Report(
            BROKEN,
            f"The log ends at event {verdict.head_sequence} but the checkpoint "
            f"of {reference.created_at} saw {reference.sequence}: events were "
            f"removed from its end.",
            verdict=verdict,
        )
    stored = seen.get("hash", chain.GENESIS if reference.sequence == 0 else None)
    if stored != reference.hash:
        return Report(
            BROKEN,
            f"Event {reference.sequence} is not the event the checkpoint of "
            f"{reference.created_at} saw: the log was rewritten.",
            verdict=verdict,
        )
    message = (
        f"{verdict} — extends the checkpoint of {reference.created_at} (event "
        f"{reference.sequence}) by {verdict.head_sequence - reference.sequence} events"
    )
    if empty := _empty_or(verdict):
        return Report(UNVOUCHED, message, empty, verdict)
    after: datetime | None = seen.get("after")
    grace = timedelta(seconds=2 * settings.AUDIT_CHECKPOINT_INTERVAL)
    if after is not None and after < timezone.now() - grace:
        return Report(
            UNVOUCHED,
            message,
            verdict=verdict,
            warning=(
                f"{verdict.head_sequence - reference.sequence} events after the newest checkpoint, "
                f"the first of {after.isoformat()}, are covered by no checkpoint although one is "
                f"due every {settings.AUDIT_CHECKPOINT_INTERVAL} s: is celery beat running?"
            ),
        )
    return Report(OK, message, verdict=verdict)


def _empty_or(verdict: chain.Verdict) -> str:
    if verdict.count:
        return ""
    return (
        "The audit log is empty. Every change and every sign-in writes an event, so an "
        "empty log is what an emptied table looks like."
    )


def checkpoint_take() -> dict[str, Any]:
    """Sign the chain head and keep it in AUDIT_ANCHOR (when set). Refuses (CheckpointRefused)
    when the log is broken or no longer extends the newest anchored checkpoint."""
    report = checkpoint_report()
    if report.status == BROKEN or report.verdict is None:
        raise CheckpointRefused(f"Not sealing the audit log: {report.message}")
    verdict = report.verdict  # events appended since the walk wait for the next checkpoint
    created_at = timezone.now().isoformat()
    doc: dict[str, Any] = {
        "format": FORMAT,
        "sequence": verdict.head_sequence,
        "hash": verdict.head_hash,
        "created_at": created_at,
        "signature": _sign(verdict.head_sequence, verdict.head_hash, created_at),
    }
    if anchor_configured():
        where = anchor_append(doc)
        logger.info("audit checkpoint at event %s kept in %s", verdict.head_sequence, where)
    else:
        logger.info(
            "audit checkpoint at event %s kept nowhere: AUDIT_ANCHOR is not set",
            verdict.head_sequence,
        )
    return doc
