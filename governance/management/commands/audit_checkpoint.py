"""Sign the audit chain head and keep it outside the database (AUDIT_ANCHOR)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance import checkpoints


class Command(BaseCommand):
    help = (
        "Sign the audit log's head and print the checkpoint as JSON. With AUDIT_ANCHOR set "
        "it is also appended there (celery beat does this every AUDIT_CHECKPOINT_INTERVAL "
        "seconds); without it, keep the output outside the database yourself. Refuses "
        "(exit status 1) when the log is broken or no longer extends the newest checkpoint."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            doc = checkpoints.checkpoint_take()
        except (checkpoints.CheckpointRefused, checkpoints.AnchorError) as exc:
            raise CommandError(str(exc), returncode=1) from None
        self.stdout.write(json.dumps(doc, indent=2))
