"""Print the audit chain head (event count and hash), signed, to be kept outside the database."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance import audit


class Command(BaseCommand):
    help = ("Print a signed checkpoint of the audit log's head as JSON. Store it outside the "
            "database; `verify_audit_log --checkpoint FILE` proves the log still extends it.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            doc = audit.checkpoint()
        except ValueError as exc:
            raise CommandError(str(exc), returncode=1) from None
        self.stdout.write(json.dumps(doc, indent=2))
