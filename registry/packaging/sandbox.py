"""The worker's side of the limited model process (registry/packaging/child.py).

Each worker process keeps one zygote: a child started with a clean environment (no database
URL, no secrets) that has imported the model libraries and forks one limited process per job.
The zygote dies with its worker (PR_SET_PDEATHSIG), and each job's process with the zygote,
so a killed worker leaves nothing running. A job that runs past its wall-clock deadline has
its process group killed. If the zygote itself died, the next job starts a new one.

Each request names how to isolate the job (child.isolate): the user to drop to when the worker
is root (SANDBOX_USER), whether to use namespaces (SANDBOX_NAMESPACES) and the secret paths
the job must not see (``secret_paths``). The job's files come back through WORKDIR, written by
that user: before the worker reads them, anything that is not a plain file or folder
(a symlink to the database, a FIFO that would block the read) is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


class SandboxError(Exception):
    """The limited process could not run the job; the message says why."""


def clean_env(home: Path) -> dict[str, str]:
    """Only what Python needs: no database URL, no secrets, no cloud credentials."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def secret_paths() -> list[str]:
    """What a model process must not see: the var folder (SQLite database, secret key, queue,
    upload spool), the local artifact store, a SQLite file kept elsewhere, and
    SANDBOX_HIDDEN_PATHS."""
    found: list[str | Path] = [settings.VAR_DIR, settings.UPLOAD_SPOOL_DIR]
    if getattr(settings, "ARTIFACT_STORAGE", "local") == "local":
        found.append(settings.ARTIFACT_ROOT)
    location = settings.STORAGES.get("artifacts", {}).get("OPTIONS", {}).get("location")
    if location and "FileSystemStorage" in settings.STORAGES["artifacts"].get("BACKEND", ""):
        found.append(location)
    for database in settings.DATABASES.values():
        if "sqlite" in database.get("ENGINE", ""):
            for name in (database.get("NAME"), database.get("TEST", {}).get("NAME")):
                if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                    found.append(Path(name).resolve().parent)
    found += settings.SANDBOX_HIDDEN_PATHS
    return sorted({str(Path(p).resolve()) for p in found})


def scrub(workdir: Path) -> None:
    """Remove from WORKDIR anything but plain files and folders: the process that wrote it
    is not trusted, and the worker reads and stores what it finds there."""
    for folder, dirs, files in os.walk(workdir, followlinks=False):
        for name in (*dirs, *files):
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                path.unlink()
            elif stat.S_ISREG(mode) and path.stat().st_nlink > 1:
                path.unlink()  # a hard link to a file outside WORKDIR


class Zygote:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.owner = 0
        self.home: Path | None = None
        self.buffer = b""

    def _alive(self) -> bool:
        return (
            self.process is not None and self.owner == os.getpid() and self.process.poll() is None
        )

    def _start(self) -> None:
        self.stop()
        self.home = Path(tempfile.mkdtemp(prefix="modelgate-zygote-"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "registry.packaging.child"],
            cwd=self.home,
            env=clean_env(self.home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.home / "stderr.log").open("wb"),
            start_new_session=True,
        )
        self.owner, self.buffer = os.getpid(), b""

    def stop(self) -> None:
        if self.process is not None and self.owner == os.getpid():
            with contextlib.suppress(OSError):
                self.process.kill()
                self.process.wait(timeout=10)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
        self.process, self.home = None, None

    def _stderr(self) -> str:
        path = self.home / "stderr.log" if self.home else None
        return path.read_text(errors="replace")[-500:] if path and path.exists() else ""

    def _line(self, stream: IO[bytes], deadline: float) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([stream], [], [], left)
            if ready:
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, workdir: Path, *, memory: int, cpu: int, timeout: float) -> int:
        """Run the job in `workdir` in a fresh limited process; its exit code (negative: the
        signal that ended it)."""
        request = (
            json.dumps(
                {
                    "workdir": str(workdir),
                    "memory": memory,
                    "cpu": cpu,
                    "user": settings.SANDBOX_USER,
                    "namespaces": settings.SANDBOX_NAMESPACES,
                    "secret": secret_paths(),
                }
            )
            + "\n"
        )
        for attempt in (1, 2):
            if not self._alive():
                self._start()
            assert self.process is not None and self.process.stdin and self.process.stdout
            deadline = time.monotonic() + timeout
            try:
                self.process.stdin.write(request.encode())
                self.process.stdin.flush()
                pid = self._line(self.process.stdout, time.monotonic() + 120)["pid"]
            except (BrokenPipeError, EOFError, TimeoutError, OSError):
                stderr = self._stderr()
                self.stop()
                if attempt == 2:
                    raise SandboxError(f"the model process could not start: {stderr}") from None
                continue
            try:
                return int(self._line(self.process.stdout, deadline)["exit"])
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError, EOFError):
                    self._line(self.process.stdout, time.monotonic() + 30)
                raise SandboxError("The model process took too long and was stopped.") from None
            except EOFError:
                self.stop()
                raise SandboxError("The model process ended unexpectedly.") from None
        raise SandboxError("the model process could not start")


_zygote = Zygote()


def run(workdir: Path, *, memory: int, cpu: int, timeout: float) -> int:
    try:
        return _zygote.run(workdir, memory=memory, cpu=cpu, timeout=timeout)
    finally:
        scrub(workdir)
