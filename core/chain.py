"""The audit log's hash chain: how an event is serialised and hashed, and how a chain is checked.

Each event stores the previous event's hash and its own, a SHA-256 over a canonical JSON
serialisation of every recorded field plus the previous hash. Editing a row changes its hash;
deleting or inserting one breaks the next event's link or the gapless sequence. What this file
defines is a contract with every log already written: never change how a version hashes, add
a new version instead.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
_DOMAIN = b"modelgate-audit-v1\n"

# The fields that make up an event, in the order they are documented (order does not matter
# for the hash: the JSON is serialised with sorted keys).
FIELDS = (
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_label",
    "channel",
    "request_id",
    "client_address",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "registered_model_id",
    "registered_model_name",
    "details",
    "prev_hash",
)


def normalise(value: Any) -> Any:
    """The form a value takes after a round trip through any supported database's JSON column,
    so the hash computed before the insert matches the one recomputed from the stored row.
    PostgreSQL's jsonb prints integral numbers without exponent or fraction (1e20 comes back as
    an int), refuses NUL characters and non-finite numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {normalise(str(k)): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return normalise(str(value))


def normalise_address(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical serialisation of one event's fields (FIELDS)."""
    doc = {name: fields[name] for name in FIELDS}
    doc["occurred_at"] = _timestamp(doc["occurred_at"])
    doc["details"] = normalise(doc["details"])
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(_DOMAIN + canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    head_sequence: int
    head_hash: str
    broken_sequence: int | None = None
    reason: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.count} events, head {self.head_sequence} {self.head_hash}"
        return f"BROKEN at event {self.broken_sequence}: {self.reason}"


def verify(rows: Iterable[dict[str, Any]]) -> Verdict:
    """Walk events in sequence order. `rows` yields dicts with FIELDS plus "hash"."""
    expected_seq, prev, count = 1, GENESIS, 0
    for row in rows:
        seq = row["sequence"]
        if seq != expected_seq:
            what = "missing (deleted?)" if seq > expected_seq else "repeated"
            return Verdict(
                False,
                count,
                expected_seq - 1,
                prev,
                broken_sequence=seq,
                reason=f"expected event {expected_seq}, found {seq}: events {what} before it",
            )
        if row["prev_hash"] != prev:
            return Verdict(
                False,
                count,
                seq - 1,
                prev,
                broken_sequence=seq,
                reason="its link to the previous event does not match (the previous "
                "event was changed, removed or replaced)",
            )
        if event_hash(row) != row["hash"]:
            return Verdict(
                False,
                count,
                seq - 1,
                prev,
                broken_sequence=seq,
                reason="its content does not match its hash (the row was edited)",
            )
        prev, expected_seq, count = row["hash"], seq + 1, count + 1
    return Verdict(True, count, expected_seq - 1, prev)


def checkpoint_sign(key: bytes, sequence: int, head_hash: str, created_at: str) -> str:
    message = f"{sequence}:{head_hash}:{created_at}".encode()
    return hmac.new(key, _DOMAIN + message, hashlib.sha256).hexdigest()
