"""API key scopes: what a key may do, checked by every endpoint and the websocket.

A session (the console, the admin) is not scoped: it is its user, limited by that
user's memberships and roles. An API key acts for its user (agent key) or its
organization (integration key) *and* only within its scopes, so a leaked bot or
monitoring key cannot read histories, edit help desks, delete clients or send mailings.

| scope        | allows                                                              |
|--------------|---------------------------------------------------------------------|
| `triggers`   | POST /api/triggers/, /api/alertmanager/                            |
| `assistance` | POST /assistance/                                                   |
| `inbound`    | POST /api/inbound-message/, message status receipts                |
| `read`       | every GET of the organization's data; listen on the websocket       |
| `agent`      | act as an agent: send, edit help desks and clients, typing/read     |
| `admin`      | configuration: mailings, templates, rules, teams, topics, webhooks   |
| `email_bounces` | POST /api/email/bounces/ (the mail provider's bounce webhook)    |
| `events`     | POST /api/events/ (external services' events -> notifications)      |

`admin` still needs the user to be an organization admin where the API asks for one;
a scope never grants more than the principal behind the key has.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

TRIGGERS = "triggers"
ASSISTANCE = "assistance"
INBOUND = "inbound"
READ = "read"
AGENT = "agent"
ADMIN = "admin"
EMAIL_BOUNCES = "email_bounces"
EVENTS = "events"

ALL = (TRIGGERS, ASSISTANCE, INBOUND, READ, AGENT, ADMIN, EMAIL_BOUNCES, EVENTS)
CHOICES = [(scope, scope) for scope in ALL]

# Least privilege by default: integrations post, they do not read or act.
INTEGRATION_DEFAULT = (TRIGGERS, ASSISTANCE, INBOUND)
# An agent key is its user in the API: what the user's roles allow (`admin` only
# matters where the user is an organization admin). Narrow it with --scopes.
AGENT_DEFAULT = (READ, AGENT, ADMIN)


def validate_scopes(value: Any) -> list[str]:
    """The scopes as a sorted list without duplicates; ValueError names unknown ones."""
    if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
        raise ValueError("Scopes are a list of names.")
    unknown = sorted(set(value) - set(ALL))
    if unknown:
        raise ValueError(f"Unknown scope(s): {', '.join(unknown)}; known: {', '.join(ALL)}.")
    return sorted(set(value))


def scopes_allow(granted: Collection[str] | None, scope: str) -> bool:
    """The rule, for HTTP and the websocket: a key's scopes (`granted`) allow `scope`;
    None is a session, which is not scoped (its user's roles decide)."""
    return granted is None or scope in granted


def key_has_scope(key: Any, scope: str) -> bool:
    """True when `key` (an ApiKey row) carries `scope`."""
    return scopes_allow(key.scopes or (), scope)
