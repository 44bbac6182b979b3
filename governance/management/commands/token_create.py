"""Create a personal API token for a user and print it once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.actors import Actor
from core.errors import DomainError
from core.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token: manage.py token_create USERNAME --name ci --days 90"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--days", type=int, default=90, help="0 for no expiry")

    def handle(self, *args: Any, username: str, name: str, days: int, **options: Any) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        expires = timezone.now() + timedelta(days=days) if days > 0 else None
        try:
            _, raw = token_create(
                actor=Actor.system("cli", user=user), user=user, name=name, expires_at=expires
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(raw)
