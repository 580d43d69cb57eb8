"""Run a management command as a child process and start it again when it dies.

`python manage.py supervise run_worker` (Procfile `worker` and `cron`): honcho starts
each process once and, when one exits, stops all the others; a worker or cron process
killed by the kernel (OOM, SIGKILL) would take the whole platform down. The protocol:

1. The child runs `manage.py <command> <args>` in a session of its own, so honcho's
   SIGTERM to this process group reaches only the supervisor, which forwards it once
   to the child's whole group (the worker, its scheduler and work horse: exactly what
   honcho would have signalled). A double SIGTERM would turn RQ's warm shutdown into
   a cold one.
2. If the child exits while no stop was asked for (killed, or a non-zero exit), the
   supervisor logs `process_restarting` once (command, exit code or signal, delay)
   and starts it again after a backoff doubling from RESTART_MIN to RESTART_MAX
   seconds; a child that ran RESTART_RESET seconds resets it. A child that exits 0
   by itself (`run_worker --burst`) ends the supervisor with 0.
3. On SIGTERM/SIGINT the supervisor forwards the signal, waits for the child and
   exits quietly with 0 (no traceback); a second signal is forwarded too (the
   operator insists). If the supervisor itself is SIGKILLed, Linux sends the child
   SIGTERM (PR_SET_PDEATHSIG), so no orphan keeps working.

Nothing depends on a process surviving (work lives in the database and is re-driven by
the sweepers; a new worker takes over the scheduler lock at once, core/workers.py), so
restarting is always safe.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.logging import get_logger

log = get_logger(__name__)

_PR_SET_PDEATHSIG = 1
# A crash loop (e.g. a bad deploy) restarts at most every 30 s; a single kill, at once.
RESTART_MIN = 0.5
RESTART_MAX = 30.0
RESTART_RESET = 60.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        first = RESTART_MIN
        delay = first
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(
                self.argv,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            if self.stopping.is_set():  # a signal between the check and the Popen
                self._forward(signal.SIGTERM, None)
            code = self.child.wait()
            if self.stopping.is_set():
                return 0
            if code == 0:
                return 0
            if time.monotonic() - started >= RESTART_RESET:
                delay = first
            log.warning(
                "process_restarting",
                command=" ".join(self.argv[2:]),
                pid=self.child.pid,
                exit_code=code if code >= 0 else None,
                signal=signal.Signals(-code).name if code < 0 else None,
                delay=delay,
            )
            # Polled rather than Event.wait: a stop signal must end the pause at once.
            until = time.monotonic() + delay
            while time.monotonic() < until:
                if self.stopping.is_set():
                    return 0
                time.sleep(0.05)
            delay = min(delay * 2, RESTART_MAX)
        return 0


class Command(BaseCommand):
    help = "Run a management command and start it again whenever it dies (with backoff)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command", help="The management command to run, e.g. run_worker.")
        parser.add_argument(
            "child_args", nargs=argparse.REMAINDER, help="Its arguments, passed as they are."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["command"] == "supervise":
            raise CommandError("supervise cannot supervise itself")
        manage = os.path.join(settings.BASE_DIR, "manage.py")
        code = Supervisor([sys.executable, manage, opts["command"], *opts["child_args"]]).run()
        if code:
            raise SystemExit(code)
