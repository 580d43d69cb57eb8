"""RQ entry points for mailing: thin, take ids, idempotent.

Each imports its service when it runs: the services and the dispatch enqueue these
functions, so this module imports nothing of theirs at load time.
"""

from __future__ import annotations


def mailing_start(mailing_id: int) -> None:
    """Start, materialize, and for an audience of one batch (a notification) send it in
    this same job: a `send_at` then costs one queued job, not a start and its lanes."""
    from mailing.services import mailing_start as start

    if start(mailing_id=mailing_id, inline_lane=True):
        from mailing.dispatch import mailing_dispatch as dispatch

        dispatch(mailing_id=mailing_id, lane=0)


def mailing_materialize(mailing_id: int) -> None:
    from mailing.services import mailing_materialize as materialize

    materialize(mailing_id=mailing_id)


def mailing_dispatch(mailing_id: int, lane: int = 0) -> None:
    from mailing.dispatch import mailing_dispatch as dispatch

    dispatch(mailing_id=mailing_id, lane=lane)


def mailing_sweep() -> dict[str, int]:
    """Cron: start due mailings, resume abandoned work, finish what is done."""
    from mailing.dispatch import mailing_sweep as sweep

    return sweep()


def mailing_daily_report() -> int:
    """Cron: email yesterday's mailing statistics to each organization's admins."""
    from mailing.services import mailing_report_send_all

    return mailing_report_send_all()
