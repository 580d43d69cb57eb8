"""Mailing test helpers (shared fixtures are in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from tests.conftest import Process


def kill_with_children(worker: Process) -> list[int]:
    """SIGKILL an RQ worker *and* its work horse; returns the children's pids.

    RQ forks one work horse per job and the horse calls os.setpgrp(), so killing the
    worker alone leaves the horse running (and finishing the job): a crash test that
    only kills the parent proves nothing. Same as tests/chat/test_faults.py.
    """
    pid = worker.process.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    worker.stop(signal.SIGKILL)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    return children
