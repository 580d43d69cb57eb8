"""Periodic jobs, run by `manage.py run_cron` (RQ's cron scheduler).

Sweepers make the database the source of truth: whatever a lost job, a Redis
restart or a killed worker left behind is found and re-enqueued from here.
"""

from __future__ import annotations

from rq import cron

from chat.assistance_jobs import assistance_sweep
from chat.jobs import chat_deliveries_sweep
from core.jobs import QUEUE_CHAT

cron.register(chat_deliveries_sweep, QUEUE_CHAT, interval=30, name="chat_deliveries_sweep")
cron.register(assistance_sweep, QUEUE_CHAT, interval=30, name="assistance_sweep")
from chat.jobs import help_desks_unsnooze, message_files_sweep  # noqa: E402

# A snoozed conversation comes back within this many seconds of its time.
cron.register(help_desks_unsnooze, QUEUE_CHAT, interval=15, name="help_desks_unsnooze")

# Orphans only appear after a grace period (FILE_ORPHAN_GRACE): no need to look often.
cron.register(message_files_sweep, QUEUE_CHAT, interval=600, name="message_files_sweep")
from core.jobs import QUEUE_MAILING  # noqa: E402
from mailing.jobs import mailing_daily_report, mailing_sweep  # noqa: E402

cron.register(mailing_sweep, QUEUE_MAILING, interval=10, name="mailing_sweep")
cron.register(mailing_daily_report, QUEUE_MAILING, cron="0 6 * * *", name="mailing_daily_report")
from core.jobs import QUEUE_ESCALATION  # noqa: E402
from escalation.jobs import escalation_sweep  # noqa: E402

cron.register(escalation_sweep, QUEUE_ESCALATION, interval=30, name="escalation_sweep")
