"""Checks made when a message is sent, not only when the mailing starts (in-process
dispatch against the simulator), and the client filter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.errors import ApplicationError

pytestmark = pytest.mark.django_db


def _started(org: Any, **fields: Any) -> Any:
    from mailing.services import mailing_create, mailing_start

    now = timezone.now()
    fields.setdefault("text", "Hi {{ name }}")
    mailing = mailing_create(
        organization=org, start_at=now, end_at=now + timedelta(minutes=10), **fields
    )
    mailing_start(mailing_id=mailing.pk)  # materializes too
    mailing.refresh_from_db()
    assert mailing.status == "running" and mailing.materialized_at is not None
    return mailing


def _rows(mailing: Any) -> Any:
    from core.models import Delivery

    return Delivery.objects.filter(mailing_message__mailing=mailing)


def test_client_opting_out_after_the_start_gets_no_promo(
    org: Any, make_client: Any, sender: Any
) -> None:
    from mailing.dispatch import mailing_dispatch

    # given: a promo mailing started (messages created) for two clients
    keen, changed_mind = make_client(org), make_client(org)
    mailing = _started(org, promo=True)
    assert _rows(mailing).count() == 2
    # when: one opts out before the message is sent
    changed_mind.promo_opt_out = True
    changed_mind.save(update_fields=["promo_opt_out"])
    mailing_dispatch(mailing_id=mailing.pk, lane=0)
    # then: only the other one is sent; the opted-out message is final, never called
    by_client = {r.mailing_message.client_id: r for r in _rows(mailing)}
    assert by_client[keen.pk].status == "sent"
    skipped = by_client[changed_mind.pk]
    assert (skipped.status, skipped.attempts) == ("failed", 0)
    assert "opted out" in skipped.last_error
    assert sender.stats()["phones"] == 1
    assert sender.accepted(skipped.pk) == 0


def test_cancel_with_a_batch_in_flight_leaves_nothing_pending(
    org: Any, make_client: Any, sender: Any
) -> None:
    from core.sender import SendResult
    from mailing.dispatch import breaker_states, claim, mailing_dispatch, record
    from mailing.services import mailing_cancel

    for _ in range(3):
        make_client(org)
    mailing = _started(org)
    # given: a batch claimed (in flight) when the mailing is cancelled
    rows = claim(mailing_id=mailing.pk, token="t1", size=10, now=timezone.now())
    assert len(rows) == 3
    mailing_cancel(mailing=mailing)
    # when: the in-flight calls fail transiently, so they are scheduled for a retry
    record(
        mailing_id=mailing.pk,
        rows=rows[:2],
        results=[SendResult("transient", 500, 5, "HTTP 500")] * 2,
        token="t1",
        breakers=breaker_states(),
    )
    record(
        mailing_id=mailing.pk,
        rows=rows[2:],
        results=[SendResult("transient", 500, 5, "HTTP 500")],
        token="t1",
        breakers=breaker_states(),
    )
    assert _rows(mailing).filter(status="pending").count() == 3
    # then: the next lane run (or the sweeper) expires them: nothing stays pending
    mailing_dispatch(mailing_id=mailing.pk, lane=0)
    assert not _rows(mailing).filter(status="pending").exists()
    assert set(_rows(mailing).values_list("status", flat=True)) == {"expired"}
    assert sender.stats()["requests"] == 0


def test_sweeper_expires_pending_messages_of_a_cancelled_mailing(
    org: Any, make_client: Any
) -> None:
    from core.models import Delivery
    from mailing.dispatch import mailing_sweep
    from mailing.services import mailing_cancel

    make_client(org)
    mailing = _started(org)
    mailing_cancel(mailing=mailing)
    _rows(mailing).update(status=Delivery.Status.PENDING)  # e.g. a retry recorded late
    mailing_sweep()
    assert list(_rows(mailing).values_list("status", flat=True)) == ["expired"]


def test_template_change_is_checked_against_the_mailings_using_it(org: Any) -> None:
    from mailing.services import mailing_create, template_create, template_update

    template = template_create(organization=org, title="T", code="t", body="Hi {{ name }}")
    now = timezone.now()
    with_code = mailing_create(
        organization=org,
        start_at=now + timedelta(hours=1),
        end_at=now + timedelta(hours=2),
        template=template,
        context={"code": "A1"},
    )
    without = mailing_create(
        organization=org,
        start_at=now + timedelta(hours=1),
        end_at=now + timedelta(hours=2),
        template=template,
    )
    # a new variable the second mailing does not give would render empty: refused
    with pytest.raises(ApplicationError) as refused:
        template_update(
            template=template,
            data={"body": "Hi {{ name }}, code {{ code }}", "variables": ["code"]},
        )
    assert "variables" in refused.value.fields
    assert f"mailing {without.pk}" in refused.value.fields["variables"][0]
    assert f"mailing {with_code.pk}" not in refused.value.fields["variables"][0]
    template.refresh_from_db()
    assert template.body == "Hi {{ name }}"
    # once that mailing gives it, the change is accepted
    from mailing.services import mailing_update

    mailing_update(mailing=without, data={"context": {"code": "B2"}})
    template_update(
        template=template, data={"body": "Hi {{ name }}, code {{ code }}", "variables": ["code"]}
    )


def test_filter_is_and_across_codes_and_tags_or_within(org: Any, make_client: Any) -> None:
    from mailing.models import Mailing
    from mailing.services import audience

    # given: clients differing in operator code and in tag
    vip_916 = make_client(org, phone="79160000001", tag="vip")
    plain_916 = make_client(org, phone="79160000002", tag="plain")
    vip_903 = make_client(org, phone="79030000003", tag="vip")
    make_client(org, phone="79030000004", tag="plain")
    gold_925 = make_client(org, phone="79250000005", tag="gold")

    def picked(**filters: Any) -> set[int]:
        mailing = Mailing(organization=org, **filters)
        return set(audience(mailing).values_list("pk", flat=True))

    assert picked(operator_codes=["916"], tags=["vip"]) == {vip_916.pk}
    assert picked(operator_codes=["916", "903"], tags=["vip"]) == {vip_916.pk, vip_903.pk}
    assert picked(operator_codes=["916"], tags=["vip", "plain"]) == {vip_916.pk, plain_916.pk}
    assert picked(operator_codes=["903"], tags=["gold"]) == set()
    assert picked(operator_codes=["925", "916"], tags=["gold", "plain"]) == {
        gold_925.pk,
        plain_916.pk,
    }


def _events(caplog: Any, name: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == name]


def test_log_lines_carry_the_ids(org: Any, make_client: Any, caplog: Any) -> None:
    from core.outbox import delivery_reclaim_stale
    from core.sender import SendResult
    from mailing.dispatch import breaker_states, claim, expire_remaining, record
    from mailing.services import mailing_cancel

    caplog.set_level("DEBUG")
    clients = [make_client(org) for _ in range(3)]
    mailing = _started(org)
    created = _events(caplog, "mailing_messages_created")[0]
    ids = sorted(created["message_ids"])
    assert created["mailing_id"] == mailing.pk and len(ids) == 3
    per_message = _events(caplog, "mailing_message_created")
    assert {(e["message_id"], e["client_id"]) for e in per_message} == {
        (m.pk, m.client_id) for m in mailing.messages.all()
    }
    assert {e["client_id"] for e in per_message} == {c.pk for c in clients}

    # an attempt whose claim was lost (reclaimed meanwhile) does not log a new status
    rows = claim(mailing_id=mailing.pk, token="t1", size=1, now=timezone.now())
    _rows(mailing).filter(pk=rows[0].id).update(claimed_at=timezone.now() - timedelta(hours=1))
    assert delivery_reclaim_stale(source="mailing") == [rows[0].id]
    assert _events(caplog, "deliveries_reclaimed")[0]["delivery_ids"] == [rows[0].id]
    record(
        mailing_id=mailing.pk,
        rows=rows,
        results=[SendResult("ok", 200, 5)],
        token="t1",
        breakers=breaker_states(),
    )
    attempt = _events(caplog, "mailing_message_attempt")[0]
    assert (attempt["mailing_id"], attempt["message_id"]) == (mailing.pk, rows[0].id)
    assert attempt["new_status"] == "unchanged" and attempt["applied"] is False
    assert _rows(mailing).get(pk=rows[0].id).status == "pending"

    expire_remaining(mailing_id=mailing.pk)
    expired = _events(caplog, "mailing_messages_expired")[0]
    assert expired["mailing_id"] == mailing.pk and sorted(expired["message_ids"]) == ids
    mailing_cancel(mailing=mailing)
    assert _events(caplog, "mailing_cancelled")[0]["mailing_id"] == mailing.pk
