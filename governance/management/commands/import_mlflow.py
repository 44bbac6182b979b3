"""Import an MLflow model registry: manage.py import_mlflow --from URI --as USERNAME.

The rules live in governance.mlflow_import; this command parses options, reads credentials
from the options or MLflow's own environment variables, and prints the report."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.errors import DomainError
from governance import mlflow_import


class Command(BaseCommand):
    help = (
        "Copy registered models, versions, descriptions, tags, aliases, stages, run ids and "
        "sources from a running MLflow server (its REST API) into Modelgate, idempotently. "
        "Imported stages and aliases skip the promotion gate and are recorded as imported, "
        "not approved."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="uri",
            required=True,
            metavar="URI",
            help="The MLflow server's base URI, e.g. http://mlflow.internal:5000",
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            required=True,
            metavar="USERNAME",
            help="An active superuser: the actor of every change and audit event",
        )
        parser.add_argument(
            "--token", default=None, help="Bearer token (default: $MLFLOW_TRACKING_TOKEN)"
        )
        parser.add_argument(
            "--username", default=None, help="HTTP basic user (default: $MLFLOW_TRACKING_USERNAME)"
        )
        parser.add_argument(
            "--password",
            default=None,
            help="HTTP basic password (default: $MLFLOW_TRACKING_PASSWORD)",
        )
        parser.add_argument(
            "--page-size",
            type=int,
            default=mlflow_import.DEFAULT_PAGE_SIZE,
            help=f"Results per search page, 1–{mlflow_import.MAX_PAGE_SIZE}",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Import each model and roll it back: report what would change, change nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["as_user"]).first()
        try:
            mlflow_import.require_importer(user)
        except DomainError as exc:
            raise CommandError(f"--as {options['as_user']}: {exc.message}") from None
        assert user is not None  # require_importer refused None
        credentials = mlflow_import.Credentials(
            token=_option(options["token"], "MLFLOW_TRACKING_TOKEN"),
            username=_option(options["username"], "MLFLOW_TRACKING_USERNAME"),
            password=_option(options["password"], "MLFLOW_TRACKING_PASSWORD"),
        )
        if bool(credentials.username) != bool(credentials.password):
            raise CommandError("HTTP basic authentication needs both a username and a password.")
        try:
            source = mlflow_import.MlflowSource(
                options["uri"], credentials=credentials, page_size=options["page_size"]
            )
        except mlflow_import.SourceError as exc:
            raise CommandError(str(exc)) from None
        dry_run = options["dry_run"]
        self.stdout.write(
            f"Importing from MLflow at {source.uri} as {user.get_username()}"
            + (" (dry run: every change is rolled back)" if dry_run else "")
        )
        try:
            report = mlflow_import.import_registry(
                actor=Actor.system("cli", user=user),
                source=source,
                dry_run=dry_run,
                progress=lambda outcome: self.stdout.write(outcome.line()),
            )
        except mlflow_import.SourceError as exc:
            raise CommandError(str(exc)) from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(report.summary())
        if report.failed:
            names = ", ".join(m.name for m in report.failed[:10])
            raise CommandError(f"{len(report.failed)} model(s) not imported: {names}.")


def _option(value: str | None, variable: str) -> str:
    return value if value is not None else os.environ.get(variable, "")
