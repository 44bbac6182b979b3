"""Check the audit log's hash chain against the newest checkpoint kept outside the database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import checkpoints


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain and that it still holds the newest checkpoint "
        "in AUDIT_ANCHOR (or in --checkpoint FILE) unchanged. Exit status 0: intact and "
        "covered by a checkpoint; 1: broken, cut off, rewritten, or the checkpoint is "
        "forged or unreadable; 2: the chain is intact but nothing outside the database "
        "vouches for it (no checkpoint, an empty log, or no checkpoint for longer than two "
        "AUDIT_CHECKPOINT_INTERVALs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoint",
            type=Path,
            help="check against this file instead of AUDIT_ANCHOR: the output "
            "of audit_checkpoint, or an anchor file of JSON lines",
        )

    def handle(self, *args: Any, checkpoint: Path | None, **options: Any) -> None:
        if checkpoint is None:
            report = checkpoints.checkpoint_report()
        else:
            try:
                found = checkpoints.checkpoints_read_file(checkpoint)
            except checkpoints.AnchorError as exc:
                raise CommandError(str(exc), returncode=1) from None
            report = checkpoints.checkpoint_report(found)
        if report.status == checkpoints.BROKEN:
            raise CommandError(report.message, returncode=1)
        self.stdout.write(report.message)
        if report.status == checkpoints.UNVOUCHED:
            self.stderr.write(f"WARNING: {report.warning}")
            sys.exit(checkpoints.UNVOUCHED)
