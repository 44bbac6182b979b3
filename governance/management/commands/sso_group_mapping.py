"""List, add and remove IdP group → role mappings, audited with the administrator named."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.actors import Actor
from core.errors import DomainError
from governance import sso
from governance.models import IdpGroupMapping


class Command(BaseCommand):
    help = (
        "IdP group → role mappings: sso_group_mapping list | "
        "sso_group_mapping add GROUP ROLE --as ADMIN | "
        "sso_group_mapping remove GROUP ROLE --as ADMIN"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "add", "remove"])
        parser.add_argument("idp_group", nargs="?", help="the exact value in the groups claim")
        parser.add_argument("role", nargs="?", help="a Modelgate role, e.g. reviewer")
        parser.add_argument(
            "--as", dest="username", help="the administrator making the change (audited)"
        )

    def handle(
        self,
        *args: Any,
        action: str,
        idp_group: str | None,
        role: str | None,
        username: str | None,
        **options: Any,
    ) -> None:
        if action == "list":
            for row in IdpGroupMapping.objects.select_related("role"):
                self.stdout.write(f"{row.idp_group}\t{row.role.name}")
            return
        if idp_group is None or role is None or not username:
            raise CommandError(f"{action} needs GROUP, ROLE and --as ADMIN.")
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        actor = Actor.system("cli", user=user)
        group = Group.objects.filter(name=role).first()
        try:
            if action == "add":
                sso.idp_mapping_create(actor=actor, idp_group=idp_group, role=group)
            else:
                mapping = IdpGroupMapping.objects.filter(
                    idp_group=idp_group, role__name=role
                ).first()
                if mapping is None:
                    raise CommandError(f"{idp_group!r} is not mapped to {role!r}.")
                sso.idp_mapping_delete(actor=actor, mapping=mapping)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"{'Mapped' if action == 'add' else 'Unmapped'} {idp_group!r} "
            f"{'to' if action == 'add' else 'from'} {role!r}."
        )
