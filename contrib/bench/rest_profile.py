"""A sampling profiler for a web process (BENCH_PROFILE=<file>, see rest_settings.py).

Every `interval` seconds a daemon thread records the stack of every other thread (the
event loop and the sync views' executor threads alike, which cProfile cannot follow) and
rewrites `<file>` every 2 s with two tables: the functions most often on a stack
(inclusive) and most often on top (self). The percentages are of samples, so of time.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Any


def _key(frame) -> str:  # type: ignore[no-untyped-def]
    code = frame.f_code
    return f"{code.co_filename.split('site-packages/')[-1]}:{code.co_firstlineno} {code.co_name}"


def start(path: str, interval: float = 0.002) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    samples = [0]

    def dump() -> None:
        n = max(samples[0], 1)
        lines = [f"samples {samples[0]} (busy thread-stacks)", "", "## inclusive"]
        lines += [f"{100 * c / n:6.1f}% {k}" for k, c in inclusive.most_common(120)]
        lines += ["", "## self"]
        lines += [f"{100 * c / n:6.1f}% {k}" for k, c in own.most_common(60)]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def run() -> None:
        # This thread's own id (not the caller's: that is the main thread, the event
        # loop of a daphne process, which must be sampled).
        me = threading.get_ident()
        last = time.monotonic()
        while True:
            time.sleep(interval)
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                top = _key(frame)
                # Idle threads (waiting in the reactor's poll, on a queue) are not work.
                if any(w in top for w in ("poll", "wait", "select", "_worker", "acquire")):
                    continue
                samples[0] += 1
                own[top] += 1
                seen = set()
                walk: Any = frame
                while walk is not None:
                    k = _key(walk)
                    if k not in seen:
                        seen.add(k)
                        inclusive[k] += 1
                    walk = walk.f_back
            if time.monotonic() - last > 2:
                last = time.monotonic()
                dump()

    threading.Thread(target=run, daemon=True, name="bench-profiler").start()
