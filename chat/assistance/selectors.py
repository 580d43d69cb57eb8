"""Assistance reads: requests and topics a principal may see."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.utils.translation import gettext

from chat.models import AssistanceRequest, AssistanceTopic
from core.access import organizations_for
from core.errors import ApplicationError


def assistance_request_list(
    *, principal: Any, organization_slug: str | None = None, status: str | None = None
) -> QuerySet[AssistanceRequest]:
    qs = AssistanceRequest.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related(
        "organization", "topic", "topic__team", "client", "help_desk", "assignee", "accepted_by"
    )


def assistance_request_get_for_principal(*, principal: Any, uuid: UUID | str) -> AssistanceRequest:
    request = assistance_request_list(principal=principal).filter(uuid=uuid).first()
    if request is None:
        raise ApplicationError(
            gettext("Assistance request not found."), code="not_found", status_code=404
        )
    return request


def assistance_topic_list(
    *, principal: Any, organization_slug: str | None = None
) -> QuerySet[AssistanceTopic]:
    qs = AssistanceTopic.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization", "team").order_by("organization_id", "name")


def assistance_topic_get_for_principal(*, principal: Any, pk: int) -> AssistanceTopic:
    topic = assistance_topic_list(principal=principal).filter(pk=pk).first()
    if topic is None:
        raise ApplicationError(gettext("Topic not found."), code="not_found", status_code=404)
    return topic
