"""Migrate, load the demo data set, print how to log in, and serve the dashboard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.demo import demo_exists, demo_load
from registry.packaging.child import die_with_parent


class Command(BaseCommand):
    help = "Prepare the embedded database with demo data and serve http://127.0.0.1:8000"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Load the data and exit (for scripts and tests).",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Do not start the local Celery worker beside the server.",
        )

    def handle(
        self, *args: Any, addrport: str, no_serve: bool, no_worker: bool, **options: Any
    ) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        fresh = not demo_exists()
        logins = demo_load()
        self.stdout.write(self.style.SUCCESS("\nModelgate demo data is ready."))
        self.stdout.write(
            f"Open http://{addrport}/ and log in as one of (password for all: {logins[0][1]}):"
        )
        for username, _, what in logins:
            self.stdout.write(f"  {username:<8} {what}")
        self.stdout.write(
            f"API docs: http://{addrport}/api/docs/   Admin: http://{addrport}/admin/ (as admin)\n"
        )
        if no_serve:
            return
        # The demo serves as production does (DEBUG off: no debug pages, static files from
        # WhiteNoise, collected and compressed) but over plain http on this machine: the key
        # generated into var/, the local host names, and cookies that travel without TLS.
        env = {**os.environ}
        for name, value in demo_environment().items():
            env.setdefault(name, value)
        subprocess.run(
            [sys.executable, "-m", "django", "collectstatic", "--noinput", "--verbosity", "0"],
            env=env,
            cwd=settings.BASE_DIR,
            check=True,
        )
        # E-mail and webhooks leave through Celery; on the embedded default a single worker
        # on the filesystem queue under var/ takes them, so the web process never waits.
        # Loading the demo queued e-mails about its own history; nobody is waiting for those.
        # --beat runs the sweeper that queues again what a lost message left behind.
        worker_command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--beat",
            "--loglevel",
            "WARNING",
            "--hostname",
            "demo@%h",
            *(["--purge"] if fresh else []),
        ]
        server_command = [sys.executable, "-m", "django", "runserver", "--noreload", addrport]
        # Both stop with this process even when it is killed rather than interrupted: they
        # receive SIGTERM (Celery's warm shutdown).
        children = [
            subprocess.Popen(
                command,
                env=env,
                cwd=settings.BASE_DIR,
                preexec_fn=lambda: die_with_parent(signal.SIGTERM),
            )
            for command in ([] if no_worker else [worker_command]) + [server_command]
        ]
        try:
            status = children[-1].wait()
        except KeyboardInterrupt:
            status = 0
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)
        if status:
            raise CommandError(f"The server stopped with exit status {status}.")


def demo_environment() -> dict[str, str]:
    """The settings the demo's server and worker run with (unless the environment says
    otherwise): production's, minus TLS, on this machine's names."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": ",".join(settings.ALLOWED_HOSTS),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
