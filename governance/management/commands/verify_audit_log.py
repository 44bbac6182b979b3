"""Check the audit log's hash chain; optionally that it still extends a saved checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import audit


class Command(BaseCommand):
    help = ("Verify the audit log's hash chain: prints 'OK' with the event count, or the first "
            "broken event (exit status 1).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checkpoint", type=Path,
                            help="a file written by audit_checkpoint that the log must extend")

    def handle(self, *args: Any, checkpoint: Path | None, **options: Any) -> None:
        if checkpoint is None:
            verdict = audit.verify()
            ok, message = verdict.ok, str(verdict)
        else:
            try:
                doc = json.loads(checkpoint.read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"Cannot read the checkpoint {checkpoint}: {exc}") from None
            ok, message = audit.checkpoint_verify(doc if isinstance(doc, dict) else {})
        if not ok:
            raise CommandError(message, returncode=1)
        self.stdout.write(message)
