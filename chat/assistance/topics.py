"""Assistance topics: what a bot may ask help for, the team that answers it and the
webhook told of its requests."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from chat.models import AssistanceRequest, AssistanceTopic
from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization, Team
from core.outbound import public_url_problem

log = get_logger(__name__)


def _team_for(*, organization: Organization, team_slug: str | None) -> Team | None:
    if not team_slug:
        return None
    team = Team.objects.filter(organization=organization, slug=team_slug).first()
    if team is None:
        raise ApplicationError(
            gettext("Unknown team."), fields={"team": [gettext("No such team here.")]}
        )
    return team


def _webhook_url_check(url: str) -> None:
    """400 on `webhook_url` unless blank or a public http(s) address (core.outbound): a
    tenant must not point the worker at loopback, the private network or the cloud
    metadata service. Send time checks again; this is the early, clear answer."""
    message = public_url_problem(url, label="Webhook URL") if url else None
    if message is not None:
        raise ApplicationError(message, fields={"webhook_url": [message]})


def _topic_save(topic: AssistanceTopic) -> AssistanceTopic:
    topic.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            topic.save()
    except IntegrityError as exc:
        raise ApplicationError(
            gettext("This topic already exists."),
            fields={"name": [gettext("Already used in this organization.")]},
        ) from exc
    return topic


def assistance_topic_create(
    *,
    organization: Organization,
    name: str,
    team_slug: str | None = None,
    webhook_url: str = "",
    webhook_secret: str = "",
) -> AssistanceTopic:
    _webhook_url_check(webhook_url)
    topic = _topic_save(
        AssistanceTopic(
            organization=organization,
            name=name,
            team=_team_for(organization=organization, team_slug=team_slug),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )
    )
    log.info("assistance_topic_created", topic_id=topic.pk, organization_id=organization.pk)
    return topic


def assistance_topic_update(*, topic: AssistanceTopic, data: dict[str, Any]) -> AssistanceTopic:
    if "team" in data:
        topic.team = _team_for(organization=topic.organization, team_slug=data["team"])
    # Only a new URL is checked: renaming a topic must not fail because its saved URL's
    # DNS changed (send time refuses that URL anyway).
    if "webhook_url" in data and data["webhook_url"] != topic.webhook_url:
        _webhook_url_check(data["webhook_url"])
    for field in ("name", "webhook_url", "webhook_secret"):
        if field in data:
            setattr(topic, field, data[field])
    _topic_save(topic)
    log.info("assistance_topic_updated", topic_id=topic.pk, fields=sorted(data))
    return topic


def assistance_topic_delete(*, topic: AssistanceTopic) -> None:
    if AssistanceRequest.objects.filter(topic=topic).exists():
        raise ApplicationError(
            gettext("The topic has requests; it cannot be deleted."),
            code="conflict",
            status_code=409,
        )
    log.info("assistance_topic_deleted", topic_id=topic.pk)
    topic.delete()
