"""The daily mailing statistics email."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.i18n import language_or_default, viewer_time_zone
from core.logging import get_logger
from core.models import Membership, Organization
from core.redis import get_redis
from mailing.models import Mailing
from mailing.selectors import STATUSES, mailings_counts

log = get_logger(__name__)


def mailing_report_build(
    *, organization: Organization, since: datetime, zone: tzinfo = UTC
) -> str | None:
    """Plain-text statistics of the mailings active since `since` (written in `zone`, the
    reader's); None if there are none."""
    mailings = list(
        Mailing.objects.filter(organization=organization)
        .filter(
            Q(created_at__gte=since) | Q(finished_at__gte=since) | Q(status=Mailing.Status.RUNNING)
        )
        .order_by("pk")
    )
    if not mailings:
        return None
    counts = mailings_counts(mailing_ids=[m.pk for m in mailings])
    lines = [
        gettext("Mailing statistics for %(organization)s since %(since)s %(zone)s")
        % {
            "organization": organization.name,
            "since": f"{since.astimezone(zone):%Y-%m-%d %H:%M}",
            "zone": str(zone),
        },
        "",
        "id\tstatus\t" + "\t".join(STATUSES) + "\ttotal\tname",
    ]
    for m in mailings:
        c = counts[m.pk]
        lines.append(
            f"{m.pk}\t{m.status}\t"
            + "\t".join(str(c[s]) for s in STATUSES)
            + f"\t{c['total']}\t{m.name}"
        )
    return "\n".join(lines) + "\n"


def mailing_report_send(*, organization: Organization, now: datetime | None = None) -> bool:
    """Email the report to the organization's admins (once per day), each in the language
    and time zone saved in their preferences (one email per language and zone; UTC when
    none is saved). True if sent."""
    now = now or timezone.now()
    by_reader: dict[tuple[str, str], set[str]] = {}
    for email, saved, saved_zone in (
        get_user_model()
        .objects.filter(
            memberships__organization=organization,
            memberships__role=Membership.Role.ADMIN,
            is_active=True,
        )
        .exclude(email="")
        .values_list("email", "preference__language", "preference__time_zone")
    ):
        zone = viewer_time_zone(saved_zone or "") or zoneinfo.ZoneInfo("UTC")
        by_reader.setdefault((language_or_default(saved), str(zone)), set()).add(email)
    recipients = sorted(set().union(*by_reader.values()))
    if not recipients:
        return False
    body = mailing_report_build(organization=organization, since=now - timedelta(days=1))
    if body is None:
        return False
    key = f"mailing:report:{organization.pk}:{now:%Y-%m-%d}"
    if not get_redis().set(key, 1, nx=True, ex=2 * 86400):
        return False  # already sent today (the job ran twice)
    for (language, zone_name), emails in sorted(by_reader.items()):
        zone = zoneinfo.ZoneInfo(zone_name)
        with translation.override(language):
            send_mail(
                subject=gettext("[%(organization)s] Daily mailing statistics %(day)s")
                % {"organization": organization.slug, "day": f"{now.astimezone(zone):%Y-%m-%d}"},
                message=mailing_report_build(
                    organization=organization, since=now - timedelta(days=1), zone=zone
                )
                or body,
                from_email=None,
                recipient_list=sorted(emails),
            )
    log.info("mailing_report_sent", organization_id=organization.pk, recipients=len(recipients))
    return True


def mailing_report_send_all() -> int:
    sent = 0
    for organization in Organization.objects.all():
        try:
            sent += mailing_report_send(organization=organization)
        except Exception:
            log.exception("mailing_report_failed", organization_id=organization.pk)
    return sent
