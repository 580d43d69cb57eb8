"""Service-level tests: validation, audience, materialization (no HTTP, no worker)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from core.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_notification_send_merges_ids_and_tags(
    org: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from mailing.models import Mailing
    from mailing.services import audience, notification_send

    # given: one client picked by id, two by tag, one neither
    by_id = make_client(org, tag="other")
    tagged = [make_client(org, tag="vip"), make_client(org, tag="vip")]
    make_client(org, tag="other")
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mailing = notification_send(
            organization=org, text="Hi {{ name }}", client_ids=[by_id.pk], tags=["vip"]
        )
    # then: starts now, both selections merged, dispatch enqueued after commit
    assert mailing.kind == Mailing.Kind.NOTIFICATION
    assert mailing.start_at <= timezone.now() < mailing.end_at
    assert set(audience(mailing).values_list("pk", flat=True)) == {
        by_id.pk,
        *(c.pk for c in tagged),
    }
    assert len(callbacks) == 1


def test_notification_send_rejects_unknown_client(org: Any) -> None:
    from mailing.services import notification_send

    with pytest.raises(ApplicationError) as exc:
        notification_send(organization=org, text="x", client_ids=[999999])
    assert "client_ids" in exc.value.fields
