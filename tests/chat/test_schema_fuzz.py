"""A short, derandomized schemathesis run over every endpoint of the OpenAPI schema:
generated input never gets a 500.

In-process through Django's WSGI handler (same thread and database connection as the
test), authenticated as an agent of an organization with a client, a help desk and a
message. Bounded (`max_examples` per operation) and derandomized so CI runs are
repeatable; it runs on whichever database the suite runs on (CI: SQLite, then
PostgreSQL, which refuses NUL bytes and lone surrogates that SQLite stores).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings


@pytest.fixture
def api_schema(seeded: Any) -> Iterator[Any]:
    # After `seeded`: Django's test client reconnects close_old_connections when done.
    # As Django's test client does: a request must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
        yield schema
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(agent: Any, help_desk: Any) -> Any:
    response = agent.client().post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "seed"}
    )
    assert response.status_code == 201
    return agent


@pytest.fixture
def no_dns(monkeypatch: Any) -> None:
    """Generated webhook URLs are resolved when saved (core/outbound.py): answer every
    name that is not an address literal or localhost with "not found", so the fuzzer
    never sends a lookup for a made-up host name off this machine."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.django_db
def test_generated_requests_never_get_a_server_error(
    seeded: Any, api_schema: Any, no_dns: None
) -> None:
    # schemathesis' own pytest integration does not run on pytest 9 (it sets
    # Function._nodeid), so each operation gets a bounded hypothesis run here.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 40  # every endpoint: chat, assistance, mailing, escalation
    auth = {"Authorization": f"Bearer {seeded.key}"}
    server_errors: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=auth)
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
                )

        run()

    assert server_errors == []
