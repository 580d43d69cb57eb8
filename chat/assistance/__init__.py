"""Assistance (seed 000): a bot asks for a human on a topic; a job routes the request.

Flow: `assistance_request_create` (HTTP, 202) stores the request and enqueues
`assistance_route`; the job opens or reuses the client's help desk, assigns the
request round-robin over the available members of the topic's team (under the
topic's row lock, so two concurrent jobs never pick the same slot), publishes
`assistance_requested` and queues the topic's outbound webhook. An agent's accept
is first-wins under the request's row lock and publishes `assistance_accepted`.
Events and enqueues happen after commit.

Modules: `topics` (topic writes), `requests` (request writes and routing), `webhooks`
(the outbound webhook, an outbox channel: core.outbox), `selectors` (reads). The
names below are the package's public surface.
"""

from __future__ import annotations

from chat.assistance.requests import (
    assistance_request_accept,
    assistance_request_create,
    assistance_request_route,
    assistance_requests_unrouted,
    assistance_sweep,
)
from chat.assistance.selectors import (
    assistance_request_get_for_principal,
    assistance_request_list,
    assistance_topic_get_for_principal,
    assistance_topic_list,
)
from chat.assistance.topics import (
    assistance_topic_create,
    assistance_topic_delete,
    assistance_topic_update,
)
from chat.assistance.webhooks import (
    SIGNATURE_HEADER,
    WEBHOOKS,
    assistance_webhook_deliver,
    assistance_webhooks_sweep,
)
from core.outbox import ATTEMPT_IN_FLIGHT, ATTEMPT_LOST
from core.outbox.webhook import sign

__all__ = [
    "ATTEMPT_IN_FLIGHT",
    "ATTEMPT_LOST",
    "SIGNATURE_HEADER",
    "WEBHOOKS",
    "assistance_request_accept",
    "assistance_request_create",
    "assistance_request_get_for_principal",
    "assistance_request_list",
    "assistance_request_route",
    "assistance_requests_unrouted",
    "assistance_sweep",
    "assistance_topic_create",
    "assistance_topic_delete",
    "assistance_topic_get_for_principal",
    "assistance_topic_list",
    "assistance_topic_update",
    "assistance_webhook_deliver",
    "assistance_webhooks_sweep",
    "sign",
]
