"""Assistance (seed 000): a bot asks for a human on a topic; a job routes the request.

Services (writes) first, selectors (reads) at the end. Events and enqueues happen
after commit, from here.

Flow: `assistance_request_create` (HTTP, 202) stores the request and enqueues
`assistance_route`; the job opens or reuses the client's help desk, assigns the
request round-robin over the available members of the topic's team (under the
topic's row lock, so two concurrent jobs never pick the same slot), publishes
`assistance_requested` and queues the topic's outbound webhook. An agent's accept
is first-wins under the request's row lock and publishes `assistance_accepted`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from chat.models import (
    AssistanceRequest,
    AssistanceTopic,
    AssistanceWebhook,
    AssistanceWebhookAttempt,
    Client,
    HelpDesk,
)
from core.access import organizations_for
from core.errors import ApplicationError
from core.events import publish_on_commit, serialize
from core.jobs import QUEUE_CHAT, enqueue_on_commit
from core.logging import get_logger
from core.models import Organization, Team, TeamMember
from core.outbound import OutboundError, post_public_url, public_url_problem
from core.outbox import retry_decision

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Assistance-Signature"


def assistance_request_data(request: AssistanceRequest) -> dict[str, Any]:
    """The REST object (and event payload) of a request: strings only (msgpack-safe)."""

    def _iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(request.uuid),
        "organization": request.organization.slug,
        "topic": request.topic.name,
        "team": request.topic.team.slug if request.topic.team_id and request.topic.team else None,
        "description": request.description,
        "status": request.status,
        "client": str(request.client.uuid) if request.client else None,
        "help_desk": str(request.help_desk.uuid) if request.help_desk else None,
        "assignee": request.assignee.username if request.assignee else None,
        "accepted_by": request.accepted_by.username if request.accepted_by else None,
        "created_at": _iso(request.created_at),
        "routed_at": _iso(request.routed_at),
        "accepted_at": _iso(request.accepted_at),
    }


# --- topics ---------------------------------------------------------------------------


def _team_for(*, organization: Organization, team_slug: str | None) -> Team | None:
    if not team_slug:
        return None
    team = Team.objects.filter(organization=organization, slug=team_slug).first()
    if team is None:
        raise ApplicationError("Unknown team.", fields={"team": ["No such team here."]})
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
            "This topic already exists.", fields={"name": ["Already used in this organization."]}
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
            "The topic has requests; it cannot be deleted.", code="conflict", status_code=409
        )
    log.info("assistance_topic_deleted", topic_id=topic.pk)
    topic.delete()


# --- requests -------------------------------------------------------------------------


def _unknown_topic(organization: Organization, name: str) -> ApplicationError:
    valid = sorted(
        AssistanceTopic.objects.filter(organization=organization).values_list("name", flat=True)
    )
    return ApplicationError(
        f"Unknown topic {name!r}. Valid topics: {', '.join(valid) or '(none configured)'}.",
        code="unknown_topic",
        fields={"topic": [f"Unknown topic. Valid topics: {valid}."]},
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
            raise ApplicationError("Unknown client.", fields={field: ["No such client here."]})
    help_desk: HelpDesk | None = None
    if help_desk_uuid is not None:
        help_desk = HelpDesk.objects.filter(uuid=help_desk_uuid, organization=organization).first()
        if help_desk is None or (client is not None and help_desk.client_id != client.pk):
            raise ApplicationError(
                "Unknown help desk.", fields={"help_desk": ["No such help desk for this client."]}
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
    from chat.assistance_jobs import assistance_route

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
    from chat.services import help_desk_open

    if request.client is not None and request.help_desk is None:
        request.help_desk, _ = help_desk_open(client=request.client)
    if assignee is None:
        topic = AssistanceTopic.objects.select_for_update().get(pk=request.topic_id)
        assignee = _pick_assignee(topic=topic)
    request.assignee = assignee
    request.status = AssistanceRequest.Status.ROUTED
    request.routed_at = timezone.now()
    request.save(update_fields=["help_desk", "assignee", "status", "routed_at", "updated_at"])
    data = assistance_request_data(request)
    log.info(
        "assistance_routed",
        assistance_id=request.pk,
        help_desk_id=request.help_desk_id,
        assignee_id=request.assignee_id,
    )
    publish_on_commit(request.organization_id, "assistance_requested", data)
    _webhook_queue(request=request, event_type="assistance_requested", data=data)


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
            f"Already accepted by {locked.accepted_by.username if locked.accepted_by else '?'}.",
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
    data = assistance_request_data(locked)
    log.info("assistance_accepted", assistance_id=locked.pk, user_id=user.pk)
    publish_on_commit(locked.organization_id, "assistance_accepted", data)
    _webhook_queue(request=locked, event_type="assistance_accepted", data=data)
    return locked


# --- outbound webhooks ------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`: the timestamp is
    signed with the body, so a receiver that rejects old timestamps stops replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _webhook_queue(*, request: AssistanceRequest, event_type: str, data: dict[str, Any]) -> None:
    topic = request.topic
    if not topic.webhook_url:
        return
    webhook = AssistanceWebhook.objects.create(
        request=request,
        event_type=event_type,
        url=topic.webhook_url,
        body=serialize({"type": event_type, "data": data}),
    )
    from chat.assistance_jobs import assistance_webhook_deliver

    enqueue_on_commit(assistance_webhook_deliver, webhook.pk, queue=QUEUE_CHAT)


# The outcome of an attempt whose row is written with the claim, before the call.
ATTEMPT_IN_FLIGHT = "in flight: no outcome yet"
ATTEMPT_LOST = "no outcome: the worker stopped during the call"


def _webhook_claim(
    webhook_id: int, token: str
) -> tuple[AssistanceWebhook, AssistanceWebhookAttempt] | None:
    """Claim a due webhook and record its attempt in one transaction, so attempt
    numbers have no gap even if the worker dies during the call (the sweeper then
    marks that attempt lost)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = (
            AssistanceWebhook.objects.filter(pk=webhook_id, status=AssistanceWebhook.Status.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .update(
                status=AssistanceWebhook.Status.SENDING,
                claim_token=token,
                claimed_at=now,
                attempts=F("attempts") + 1,
            )
        )
        if not claimed:
            return None
        webhook = AssistanceWebhook.objects.select_related("request__topic").get(pk=webhook_id)
        attempt = AssistanceWebhookAttempt.objects.create(
            webhook=webhook, number=webhook.attempts, duration_ms=0, error=ATTEMPT_IN_FLIGHT
        )
    return webhook, attempt


def _post(webhook: AssistanceWebhook) -> tuple[int | None, int, str, bool]:
    """One HTTP call, to a public address only (core.outbound: checked now, connected
    to the address checked). Returns (status code, duration ms, error, permanent).
    No transaction open."""
    body = webhook.body.encode()
    secret = webhook.request.topic.webhook_secret
    headers = {
        "Content-Type": "application/json",
        "X-Assistance-Event": webhook.event_type,
        "X-Assistance-Delivery": str(webhook.pk),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body, int(time.time()))
    start = time.perf_counter()
    try:
        response = post_public_url(
            webhook.url, content=body, headers=headers, timeout=settings.ASSISTANCE_WEBHOOK_TIMEOUT
        )
        duration = int((time.perf_counter() - start) * 1000)
        error = "" if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, duration, error, _permanent(response.status_code)
    except OutboundError as exc:
        # Refused before any connection (or a redirect not followed): no retry helps
        # until the URL or its DNS changes; an unresolved name is retried.
        duration = int((time.perf_counter() - start) * 1000)
        verdict = "refused" if exc.permanent else "not sent"
        log.warning(
            "assistance_webhook_refused",
            webhook_id=webhook.pk,
            assistance_id=webhook.request_id,
            reason=exc.reason,
        )
        return exc.status_code, duration, f"{verdict}: {exc.reason}"[:500], exc.permanent
    except httpx.HTTPError as exc:
        duration = int((time.perf_counter() - start) * 1000)
        return None, duration, f"{type(exc).__name__}: {exc}"[:500], False


def _permanent(status_code: int) -> bool:
    """A 4xx other than timeout/too-early/too-many says the receiver will not take it."""
    return 400 <= status_code < 500 and status_code not in (408, 425, 429)


def assistance_webhook_deliver(*, webhook_id: int) -> str | None:
    """Job body: one attempt, recorded; a retry scheduled with backoff on failure.

    Claimed with a conditional UPDATE (a duplicate job finds nothing to do); the
    outcome is written only if the claim token still matches.
    """
    import secrets

    token = secrets.token_hex(8)
    claim = _webhook_claim(webhook_id, token)
    if claim is None:
        return None
    webhook, attempt = claim
    status_code, duration_ms, error, permanent = _post(webhook)
    with transaction.atomic():
        AssistanceWebhookAttempt.objects.filter(pk=attempt.pk).update(
            status_code=status_code, duration_ms=duration_ms, error=error
        )
        # The outbox's one decision (core.outbox): no deadline, so at most
        # ASSISTANCE_WEBHOOK_MAX_ATTEMPTS attempts, with the sender's capped backoff.
        decision = retry_decision(
            "ok" if not error else "permanent" if permanent else "transient",
            webhook.attempts,
            None,
            timezone.now(),
            max_attempts=settings.ASSISTANCE_WEBHOOK_MAX_ATTEMPTS,
        )
        status, retry_at = AssistanceWebhook.Status(decision.status), decision.retry_at
        updated = AssistanceWebhook.objects.filter(
            pk=webhook.pk, status=AssistanceWebhook.Status.SENDING, claim_token=token
        ).update(status=status, next_attempt_at=retry_at, claim_token="")
        log.info(
            "assistance_webhook_attempt",
            webhook_id=webhook.pk,
            assistance_id=webhook.request_id,
            attempt=webhook.attempts,
            status_code=status_code,
            duration_ms=duration_ms,
            error=error or None,
            new_status=status if updated else "unchanged",
        )
        if updated and retry_at is not None:
            from chat.assistance_jobs import assistance_webhook_deliver as job

            enqueue_on_commit(job, webhook.pk, queue=QUEUE_CHAT, at=retry_at)
    return status


def assistance_sweep(*, grace: timedelta = timedelta(seconds=60)) -> dict[str, list[int]]:
    """What a lost job or a killed worker left behind: unrouted requests, webhooks stuck
    in `sending` or overdue. Returns the ids to re-enqueue (the caller enqueues)."""
    now = timezone.now()
    limit = now - grace
    stale_ids = list(
        AssistanceWebhook.objects.filter(
            status=AssistanceWebhook.Status.SENDING,
            claimed_at__lt=now - timedelta(seconds=settings.ASSISTANCE_WEBHOOK_TIMEOUT * 3),
        ).values_list("pk", flat=True)[:1000]
    )
    stale = 0
    if stale_ids:
        with transaction.atomic():
            AssistanceWebhookAttempt.objects.filter(
                webhook_id__in=stale_ids, error=ATTEMPT_IN_FLIGHT
            ).update(error=ATTEMPT_LOST)
            stale = AssistanceWebhook.objects.filter(
                pk__in=stale_ids, status=AssistanceWebhook.Status.SENDING
            ).update(status=AssistanceWebhook.Status.PENDING, claim_token="", next_attempt_at=None)
    if stale:
        log.warning("assistance_webhooks_reclaimed", count=stale)
    requests = list(
        AssistanceRequest.objects.filter(
            status=AssistanceRequest.Status.RECEIVED, created_at__lt=limit
        ).values_list("pk", flat=True)[:1000]
    )
    webhooks = list(
        AssistanceWebhook.objects.filter(status=AssistanceWebhook.Status.PENDING)
        .filter(
            Q(next_attempt_at__lt=limit) | Q(next_attempt_at__isnull=True, created_at__lt=limit)
        )
        .values_list("pk", flat=True)[:1000]
    )
    if stale:
        webhooks += list(
            AssistanceWebhook.objects.filter(
                status=AssistanceWebhook.Status.PENDING, next_attempt_at__isnull=True
            )
            .exclude(pk__in=webhooks)
            .values_list("pk", flat=True)[:1000]
        )
    return {"requests": requests, "webhooks": webhooks}


# --- selectors --------------------------------------------------------------------------


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
        raise ApplicationError("Assistance request not found.", code="not_found", status_code=404)
    return request


def assistance_topic_list(*, principal: Any, organization_slug: str | None = None) -> Any:
    qs = AssistanceTopic.objects.filter(organization__in=organizations_for(principal))
    if organization_slug is not None:
        qs = qs.filter(organization__slug=organization_slug)
    return qs.select_related("organization", "team").order_by("organization_id", "name")


def assistance_topic_get_for_principal(*, principal: Any, pk: int) -> AssistanceTopic:
    topic = assistance_topic_list(principal=principal).filter(pk=pk).first()
    if topic is None:
        raise ApplicationError("Topic not found.", code="not_found", status_code=404)
    return topic


def webhook_body_json(webhook: AssistanceWebhook) -> dict[str, Any]:
    return dict(json.loads(webhook.body))
