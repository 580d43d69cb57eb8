"""Assistance requests: a bot's request stored, routed round robin to the topic's team,
accepted first-wins (see the package docstring for the flow)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from chat.assistance.webhooks import assistance_webhook_queue, assistance_webhooks_sweep
from chat.assistance_jobs import assistance_route
from chat.models import AssistanceRequest, AssistanceTopic, Client, HelpDesk
from chat.representations import AssistanceRequestSerializer
from chat.services import help_desk_open
from core.errors import ApplicationError
from core.events import publish_on_commit
from core.jobs import QUEUE_CHAT, enqueue_on_commit
from core.logging import get_logger
from core.models import Organization, TeamMember

log = get_logger(__name__)


def _unknown_topic(organization: Organization, name: str) -> ApplicationError:
    valid = sorted(
        AssistanceTopic.objects.filter(organization=organization).values_list("name", flat=True)
    )
    topics = ", ".join(valid) if valid else gettext("none configured")
    return ApplicationError(
        gettext("Unknown topic %(name)s. Valid topics: %(topics)s.")
        % {"name": repr(name), "topics": topics},
        code="unknown_topic",
        fields={
            "topic": [gettext("Unknown topic. Valid topics: %(topics)s.") % {"topics": topics}]
        },
    )


@transaction.atomic
def assistance_request_create(
    *,
    organization: Organization,
    topic: str,
    description: str = "",
    client_phone: str | None = None,
    client_uuid: UUID | None = None,
    help_desk_uuid: UUID | None = None,
) -> AssistanceRequest:
    """Store a bot's request and enqueue its routing. 400 (field errors) on an unknown
    topic, client or help desk of this organization."""
    topic_row = (
        AssistanceTopic.objects.select_related("team").filter(organization=organization, name=topic)
    ).first()
    if topic_row is None:
        raise _unknown_topic(organization, topic)
    client: Client | None = None
    if client_uuid is not None or client_phone:
        lookup = Q(uuid=client_uuid) if client_uuid is not None else Q(phone=client_phone)
        client = Client.objects.filter(lookup, organization=organization).first()
        if client is None:
            field = "client" if client_uuid is not None else "phone"
            raise ApplicationError(
                gettext("Unknown client."), fields={field: [gettext("No such client here.")]}
            )
    help_desk: HelpDesk | None = None
    if help_desk_uuid is not None:
        help_desk = HelpDesk.objects.filter(uuid=help_desk_uuid, organization=organization).first()
        if help_desk is None or (client is not None and help_desk.client_id != client.pk):
            raise ApplicationError(
                gettext("Unknown help desk."),
                fields={"help_desk": [gettext("No such help desk for this client.")]},
            )
        client = client or help_desk.client
    request = AssistanceRequest.objects.create(
        organization=organization,
        topic=topic_row,
        description=description,
        client=client,
        help_desk=help_desk,
    )
    log.info(
        "assistance_requested",
        assistance_id=request.pk,
        organization_id=organization.pk,
        topic=topic_row.name,
        client_id=client.pk if client else None,
    )
    enqueue_on_commit(assistance_route, request.pk, queue=QUEUE_CHAT)
    return request


def _pick_assignee(*, topic: AssistanceTopic) -> Any:
    """Round robin over available members. Call holding the topic's row lock."""
    if topic.team_id is None:
        return None
    members = list(
        TeamMember.objects.filter(
            team_id=topic.team_id,
            membership__is_available=True,
            membership__organization_id=topic.organization_id,
            membership__user__is_active=True,
        )
        .select_related("membership__user")
        .order_by("order", "id")
    )
    if not members:
        return None
    chosen = members[topic.rr_next % len(members)]
    AssistanceTopic.objects.filter(pk=topic.pk).update(rr_next=topic.rr_next + 1)
    return chosen.membership.user


def _locked_request(request_id: int) -> AssistanceRequest | None:
    return (
        AssistanceRequest.objects.select_for_update(of=("self",))
        .select_related(
            "organization", "topic", "topic__team", "client", "help_desk", "assignee", "accepted_by"
        )
        .filter(pk=request_id)
        .first()
    )


@transaction.atomic
def assistance_request_route(*, request_id: int) -> AssistanceRequest | None:
    """Job body. Idempotent: only a request never routed is routed, under its row lock
    (an accept before the job routes it itself: see `assistance_request_accept`)."""
    request = _locked_request(request_id)
    if request is None or request.routed_at is not None:
        log.info("assistance_route_skipped", assistance_id=request_id)
        return request
    _route(request)
    return request


def _route(request: AssistanceRequest, *, assignee: Any = None) -> None:
    """Open the client's help desk, assign (round robin, unless `assignee` is given),
    mark routed, announce and queue the webhook. Call holding the request's row lock."""
    if request.client is not None and request.help_desk is None:
        request.help_desk, _ = help_desk_open(client=request.client)
    if assignee is None:
        topic = AssistanceTopic.objects.select_for_update().get(pk=request.topic_id)
        assignee = _pick_assignee(topic=topic)
    request.assignee = assignee
    request.status = AssistanceRequest.Status.ROUTED
    request.routed_at = timezone.now()
    request.save(update_fields=["help_desk", "assignee", "status", "routed_at", "updated_at"])
    data = dict(AssistanceRequestSerializer(request).data)
    log.info(
        "assistance_routed",
        assistance_id=request.pk,
        help_desk_id=request.help_desk_id,
        assignee_id=request.assignee_id,
    )
    publish_on_commit(request.organization_id, "assistance_requested", data)
    assistance_webhook_queue(request=request, event_type="assistance_requested", data=data)


@transaction.atomic
def assistance_request_accept(*, request: AssistanceRequest, user: Any) -> AssistanceRequest:
    """First accept wins; a second one (same or other agent) is a 409.

    A request still `received` (its routing job has not run) is routed here first, to
    the accepting agent: the help desk is opened and `assistance_requested` and its
    webhook still go out, before `assistance_accepted`. The routing job then finds
    it routed and does nothing (it used to skip it, and nothing was ever announced).
    """
    locked = _locked_request(request.pk)
    assert locked is not None
    if locked.status == AssistanceRequest.Status.ACCEPTED:
        raise ApplicationError(
            gettext("Already accepted by %(username)s.")
            % {"username": locked.accepted_by.username if locked.accepted_by else "?"},
            code="already_accepted",
            status_code=409,
        )
    if locked.routed_at is None:
        _route(locked, assignee=user)
    locked.status = AssistanceRequest.Status.ACCEPTED
    locked.accepted_by = user
    locked.accepted_at = timezone.now()
    locked.save(update_fields=["status", "accepted_by", "accepted_at", "updated_at"])
    if locked.help_desk is not None and locked.help_desk.assignee_id is None:
        HelpDesk.objects.filter(pk=locked.help_desk.pk).update(assignee=user)
    data = dict(AssistanceRequestSerializer(locked).data)
    log.info("assistance_accepted", assistance_id=locked.pk, user_id=user.pk)
    publish_on_commit(locked.organization_id, "assistance_accepted", data)
    assistance_webhook_queue(request=locked, event_type="assistance_accepted", data=data)
    return locked


def assistance_requests_unrouted(*, grace: timedelta = timedelta(seconds=60)) -> list[int]:
    """Requests still `received` after `grace`: their routing job was lost."""
    return list(
        AssistanceRequest.objects.filter(
            status=AssistanceRequest.Status.RECEIVED, created_at__lt=timezone.now() - grace
        ).values_list("pk", flat=True)[:1000]
    )


def assistance_sweep() -> dict[str, list[int]]:
    """What a lost job or a killed worker left behind: unrouted requests, webhooks stuck
    in `sending` or overdue. Returns the ids to re-enqueue (the caller enqueues)."""
    return {"requests": assistance_requests_unrouted(), "webhooks": assistance_webhooks_sweep()}
