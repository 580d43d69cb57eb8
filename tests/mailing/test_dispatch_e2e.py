"""Mailing dispatch end to end: real RQ workers, the sender simulator over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _mailing(org: Any, **fields: Any) -> Any:
    from mailing.services import mailing_create

    now = timezone.now()
    fields.setdefault("start_at", now)
    fields.setdefault("end_at", now + timedelta(minutes=10))
    fields.setdefault("text", "Hello {{ name }}")
    return mailing_create(organization=org, **fields)


def _status(mailing: Any) -> str:
    mailing.refresh_from_db()
    return str(mailing.status)


def _counts(mailing: Any) -> dict[str, int]:
    from mailing.selectors import mailing_counts

    return mailing_counts(mailing_id=mailing.pk)


def test_campaign_delivers_every_message_once(
    org: Any, make_client: Any, sender: Any, start_worker: Any
) -> None:
    from core.models import DeliveryAttempt
    from mailing.models import MailingMessage

    # given: 30 clients, a mailing open now, small batches so there are several
    clients = [make_client(org) for _ in range(30)]
    start_worker(MAILING_BATCH_SIZE="7")
    # when
    mailing = _mailing(org)
    # then
    wait_until(lambda: _status(mailing) == "finished", timeout=30)
    assert _counts(mailing)["sent"] == 30
    stats = sender.stats()
    assert stats["unique"] == 30 and stats["duplicates"] == 0
    messages = MailingMessage.objects.filter(mailing=mailing).select_related("delivery")
    assert {m.client_id for m in messages} == {c.pk for c in clients}
    for m in messages:
        assert sender.accepted(m.pk) == 1
        assert m.delivery.text == f"Hello {m.client.name}"
    assert DeliveryAttempt.objects.filter(delivery__mailing_message__mailing=mailing).count() == 30
