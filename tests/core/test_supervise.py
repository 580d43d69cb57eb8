"""`manage.py supervise` (core/management/commands/supervise.py): a killed child is
started again (one `process_restarting` line), a stop signal is forwarded once and ends
everything quietly, a child that finishes ends the supervisor, and a killed supervisor
takes its child with it. Real processes; the child is `manage.py shell -c ...`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until

# A child that, like run_worker and run_cron, ends quietly on SIGINT as on SIGTERM.
SLEEPER = (
    "import signal, sys, time; signal.signal(signal.SIGINT, lambda *a: sys.exit(0));"
    " print('ready', flush=True); time.sleep(120)"
)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Supervised:
    def __init__(self, *child: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "console"}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "supervise", *child],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.append(raw.decode(errors="replace"))

    def child(self) -> int | None:
        found = _children(self.process.pid)
        return found[0] if len(found) == 1 else None

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_child_is_restarted_and_a_stop_is_forwarded_quietly(sig: int) -> None:
    supervised = Supervised("shell", "-c", SLEEPER)
    try:
        # given a running child
        first = wait_until(supervised.child, timeout=20)
        # when it is SIGKILLed
        os.kill(first, signal.SIGKILL)
        # then another one is started, and the restart is logged once
        second = wait_until(lambda: (pid := supervised.child()) != first and pid, timeout=20)
        assert "process_restarting" in supervised.output()
        assert supervised.output().count("process_restarting") == 1
        assert "SIGKILL" in supervised.output()
        # when the supervisor is asked to stop (honcho's SIGTERM, Ctrl-C's SIGINT)
        wait_until(lambda: supervised.output().count("ready") == 2, timeout=20)
        supervised.process.send_signal(sig)
        # then the child got it (it is in a session of its own: only by forwarding)
        assert supervised.process.wait(20) == 0, supervised.output()
        wait_until(lambda: not _alive(second), timeout=10)
        assert "Traceback" not in supervised.output(), supervised.output()
        assert supervised.output().count("process_restarting") == 1
    finally:
        supervised.close()


@pytest.mark.timeout(60)
def test_a_child_that_finishes_ends_the_supervisor() -> None:
    supervised = Supervised("shell", "-c", "print('done')")
    try:
        assert supervised.process.wait(30) == 0, supervised.output()
        assert "process_restarting" not in supervised.output()
    finally:
        supervised.close()


@pytest.mark.timeout(60)
def test_a_killed_supervisor_takes_its_child_along() -> None:
    supervised = Supervised("shell", "-c", SLEEPER)
    try:
        child = wait_until(supervised.child, timeout=20)
        os.kill(supervised.process.pid, signal.SIGKILL)
        # PR_SET_PDEATHSIG: the orphan gets SIGTERM
        wait_until(lambda: not _alive(child), timeout=10)
    finally:
        supervised.close()
        # (the orphan, if the test failed: it is in its own session)
        for pid in _children(1):
            if SLEEPER in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)
