"""What a lane and the sweeper ask of a mailing between batches: what is due next,
expiring what can no longer be sent, and the throttled progress event."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from core.events import publish_on_commit
from core.logging import get_logger
from core.models import Delivery
from core.redis import get_redis
from mailing.dispatch.batch import mailing_deliveries
from mailing.dispatch.counters import DELIVERIES
from mailing.models import Mailing
from mailing.representations import mailing_event_data
from mailing.selectors import mailing_counts

log = get_logger(__name__)

_PENDING = Delivery.Status.PENDING


def progress_publish_throttled(mailing_id: int, organization_id: int) -> None:
    """Publish `mailing_progress` at most once per `MAILING_PROGRESS_INTERVAL` (all lanes)."""
    interval_ms = int(settings.MAILING_PROGRESS_INTERVAL * 1000)
    if not get_redis().set(f"mailing:progress:{int(mailing_id)}", 1, nx=True, px=interval_ms):
        return
    # The whole mailing (its name and dates), so a console that never listed it can show it.
    mailing = Mailing.objects.select_related("organization").filter(pk=mailing_id).first()
    if mailing is None:
        return
    publish_on_commit(
        organization_id,
        "mailing_progress",
        mailing_event_data(mailing, mailing_counts(mailing_id=mailing_id)),
    )


def expire_remaining(*, mailing_id: int, reason: str = "end time passed") -> int:
    """Expire the mailing's pending messages (not the ones in flight: their batch records them)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            mailing_deliveries(mailing_id)
            .select_for_update(skip_locked=True, of=("self",))
            .filter(status=_PENDING)
            .values_list("pk", flat=True)
        )
        count: int = (
            Delivery.objects.filter(pk__in=ids, status=_PENDING).update(
                status=Delivery.Status.EXPIRED,
                last_error=reason,
                next_attempt_at=None,
                updated_at=now,
            )
            if ids
            else 0
        )
    if count:
        DELIVERIES.labels("expired").inc(count)
        log.info(
            "mailing_messages_expired",
            mailing_id=mailing_id,
            count=count,
            message_ids=ids,
            reason=reason,
        )
    return count


def next_due(mailing_id: int, transports: Collection[str] | None = None) -> datetime | None:
    """When the mailing's next pending message (of `transports`, if given) is due (now for
    a never-tried one)."""
    pending = mailing_deliveries(mailing_id).filter(status=_PENDING)
    if transports is not None:
        pending = pending.filter(mailing_message__transport__in=list(transports))
    value: datetime | None = pending.aggregate(at=Min("next_attempt_at"))["at"]
    if value is None and pending.filter(next_attempt_at__isnull=True).exists():
        return timezone.now()
    return value
