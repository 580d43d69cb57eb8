"""Demo template and a future mailing for `manage.py demo_data`."""

from __future__ import annotations

from datetime import time, timedelta

from django.utils import timezone

from core.models import Organization
from mailing import services


def create(*, organization: Organization) -> None:
    template = services.template_create(
        organization=organization,
        title="Weekend offer",
        code="weekend-offer",
        body="Hi {{ name }}! {{ discount }} off this weekend with code {{ code }}.",
        variables=["discount", "code"],
    )
    start = timezone.now() + timedelta(hours=1)
    services.mailing_create(
        organization=organization,
        name="Weekend offer (demo)",
        start_at=start,
        end_at=start + timedelta(days=2),
        template=template,
        context={"discount": "15%", "code": "WEEKEND15"},
        tags=["regular", "vip"],
        promo=True,
        window_start=time(9, 0),
        window_end=time(21, 0),
    )
