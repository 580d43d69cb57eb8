"""Mailing writes, by area (callers import from `mailing.services`):

- `templates`: template create / update / delete;
- `mailings`: mailing create (and `notification_send`), update, delete;
- `lifecycle`: the transitions (start, cancel, finish), one function each;
- `materialize`: the start job's body, the audience becoming message rows;
- `reports`: the daily statistics email;
- `validation`: checks shared by creating and updating.

Sending itself (claim, HTTP, record) lives in `mailing.dispatch`, which calls the
lifecycle functions here and never the other way round.
"""

from mailing.services.lifecycle import (
    mailing_cancel,
    mailing_finish_if_done,
    mailing_publish_finished,
    mailing_schedule_start,
    mailings_start,
)
from mailing.services.mailings import (
    MAILING_VALUES,
    mailing_create,
    mailing_delete,
    mailing_update,
    mailing_validate,
    notification_send,
)
from mailing.services.materialize import audience, mailing_materialize, mailing_start
from mailing.services.reports import (
    mailing_report_build,
    mailing_report_send,
    mailing_report_send_all,
)
from mailing.services.templates import (
    template_create,
    template_delete,
    template_update,
    template_validate,
)
from mailing.services.validation import MAX_CLIENT_IDS, MAX_FILTER_VALUES

__all__ = [
    "MAILING_VALUES",
    "MAX_CLIENT_IDS",
    "MAX_FILTER_VALUES",
    "audience",
    "mailing_cancel",
    "mailing_create",
    "mailing_delete",
    "mailing_finish_if_done",
    "mailing_materialize",
    "mailing_publish_finished",
    "mailing_report_build",
    "mailing_report_send",
    "mailing_report_send_all",
    "mailing_schedule_start",
    "mailing_start",
    "mailing_update",
    "mailing_validate",
    "mailings_start",
    "notification_send",
    "template_create",
    "template_delete",
    "template_update",
    "template_validate",
]
