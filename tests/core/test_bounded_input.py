"""Bounded input (issue 9 item 8), driven as an attacker would: against a real daphne for
what happens before Django (body size, the trigger fast path), in process for the rest.

Every case here was a 500, or a body spooled to disk before authentication, before.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from rest_framework.test import APIClient

from tests.conftest import Process

DECLARED = 256 * 1024 * 1024  # what the attacker claims to send


def _connect(web: Process) -> socket.socket:
    url = urlsplit(web.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 10 s pass)."""
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    return data


def _spooled_files(pid: int) -> dict[str, int]:
    """{fd: size} of the deleted temporary files the process holds open (Twisted spools
    a body past 100 kB to an unlinked TemporaryFile). Not stdin/stdout/stderr: under
    pytest's capture they are deleted temporary files too, and grow as the server logs."""
    sizes = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if fd.name in {"0", "1", "2"}:
            continue
        try:
            target = os.readlink(fd)
            if target.endswith("(deleted)") and "/tmp" in target:
                sizes[f"{fd.name} {target}"] = os.stat(fd).st_size
        except OSError:
            continue
    return sizes


@pytest.fixture
def web(start_web: Callable[..., Process]) -> Process:
    return start_web(MAX_REQUEST_BODY="200000")


# A declared huge body (256 MiB in Content-Length) refused before it is sent is proven in
# tests/core/test_daphne_support.py, on the daphne that also checks the direct websocket
# writes (one server start for both).


def test_a_chunked_body_is_refused_once_it_passes_the_limit(web: Process) -> None:
    sock = _connect(web)
    sock.sendall(
        b"POST /api/clients/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 50_000
    refused = b""
    sock.settimeout(0.2)
    for _ in range(40):  # up to 2 MB, ten times the limit
        try:
            sock.sendall(hex(len(chunk))[2:].encode() + b"\r\n" + chunk + b"\r\n")
            refused += sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if refused:
            break
    sock.settimeout(10)
    refused += _read_response(sock)
    assert refused.startswith(b"HTTP/1.1 413"), refused[:200]
    assert max(_spooled_files(web.process.pid).values(), default=0) <= 200_000
    sock.close()


def test_a_body_within_the_limit_still_reaches_the_platform(web: Process) -> None:
    # 150 kB (past Twisted's in-memory threshold, under the limit): Django answers
    response = httpx.post(
        f"{web.url}/api/clients/",
        content=b'{"name": "' + b"x" * 150_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401


# --- JSON depth -------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"]" * depth + b', "phone": "79160000000"}'


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deeply_nested_json_is_a_400(agent: Any, depth: int) -> None:
    response = agent.client().post(
        f"/api/clients/?organization={agent.organization.slug}",
        _nested(depth),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.django_db
def test_moderately_nested_json_is_parsed_as_before(agent: Any) -> None:
    response = agent.client().post(
        "/api/alertmanager/",
        {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]},
        format="json",
    )
    assert response.status_code != 400 or "parse" not in response.content.decode()


def test_deeply_nested_alertmanager_post_through_daphne_is_a_400(
    start_web: Callable[..., Process], integration_key: str
) -> None:
    web = start_web()
    deep = b"[" * 5000 + b"]" * 5000
    body = (
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
        b'"labels": {"service": "api", "status": "503"}, "annotations": {"x": ' + deep + b"}}]}"
    )
    response = httpx.post(
        f"{web.url}/api/alertmanager/",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {integration_key}"},
    )
    assert response.status_code == 400, response.text[:300]


# --- crafted pagination cursors ---------------------------------------------------------


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


LISTS = [
    "/api/help-desks/",  # ordered by a datetime
    "/api/help-desks/{desk}/history/",
    "/api/clients/",
    "/api/mailings/",
    "/api/incidents/",
    "/api/assistance/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "position", ["abc", "99999999999999999999999", "2026-13-45T99:00:00", "1e400", "\x00"]
)
def test_a_crafted_cursor_is_a_404_not_a_500(
    agent: Any, help_desk: Any, path: str, position: str
) -> None:
    response = agent.client().get(
        path.format(desk=help_desk.uuid),
        {"organization": agent.organization.slug, "cursor": _cursor(f"p={position}")},
    )
    assert response.status_code in (400, 404), (response.status_code, response.content[:300])


# --- NUL bytes in filters ---------------------------------------------------------------

FILTERED = [
    ("/api/help-desks/", "organization"),
    ("/api/clients/", "organization"),
    ("/api/clients/", "tag"),
    ("/api/mailings/", "organization"),
    ("/api/mailings/", "status"),
    ("/api/incidents/", "organization"),
    ("/api/incidents/", "status"),
    ("/api/assistance/", "organization"),
    ("/api/assistance/", "status"),
    ("/api/escalation/rules/", "organization"),
    ("/api/teams/", "organization"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "param"), FILTERED)
def test_a_nul_byte_in_a_filter_is_a_400(agent: Any, path: str, param: str) -> None:
    response = agent.client().get(path, {param: "acme\x00"})
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response.json()["error"]["fields"] == {param: ["Null characters are not allowed."]}


# --- Alertmanager label names -----------------------------------------------------------

BAD_LABEL_NAMES = [b'"\\ud800"', b'"serv\\u0000ice"', b'""']


def _alert_with_label_name(name: bytes) -> bytes:
    return (
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": '
        b'{"service": "api", "status": "503", ' + name + b': "x"}}]}'
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", BAD_LABEL_NAMES)
def test_an_invalid_label_name_is_a_400(integration_key: str, name: bytes) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {integration_key}")
    response = api.post(
        "/api/alertmanager/", _alert_with_label_name(name), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    # NUL and a lone surrogate are refused by the JSON parser, an empty name by the
    # serializer's label-name rule: either way a field error under the alert's labels
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "labels" in str(error["fields"])


@pytest.mark.parametrize("name", BAD_LABEL_NAMES)
def test_an_invalid_label_name_through_the_fast_path_is_a_400(
    start_web: Callable[..., Process], integration_key: str, name: bytes
) -> None:
    web = start_web()
    response = httpx.post(
        f"{web.url}/api/alertmanager/",
        content=_alert_with_label_name(name),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {integration_key}"},
    )
    assert response.status_code == 400, response.text[:300]


# --- strings no database stores ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "context", [b'{"x": "a\\u0000b"}', b'{"\\ud800": "a"}', b'{"x": "\\udc00"}']
)
def test_a_json_string_no_database_stores_is_a_400_and_nothing_is_written(
    agent: Any, context: bytes
) -> None:
    """A mailing's `context` is kept as given: NUL failed on PostgreSQL (500), and a
    lone-surrogate key was committed and then failed while rendering the 201 (a 500
    for a post whose data was written)."""
    from mailing.models import Mailing

    body = (
        b'{"organization": "acme", "start_at": "2030-01-01T00:00:00Z", '
        b'"end_at": "2030-01-02T00:00:00Z", "text": "hi", "context": ' + context + b"}"
    )
    response = agent.client().post("/api/mailings/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [name.split(".")[0] for name in error["fields"]] == ["context"]
    assert not Mailing.objects.exists()


def test_the_fast_path_refuses_them_like_django(
    start_web: Callable[..., Process], integration_key: str
) -> None:
    # annotations are not validated field by field: the document-wide rule still applies
    web = start_web()
    body = (
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
        b'"labels": {"service": "api", "status": "503"}, "annotations": {"x": "\\u0000"}}]}'
    )
    response = httpx.post(
        f"{web.url}/api/alertmanager/",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {integration_key}"},
    )
    assert response.status_code == 400, response.text[:300]


# --- committed means success ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_post_answers_success_when_redis_fails_after_commit(
    agent: Any, help_desk: Any, monkeypatch: Any
) -> None:
    """publish_on_commit / enqueue_on_commit run after the commit, inside the request:
    if Redis refuses then, the write happened and the answer must say so (the sweepers
    and the next resync recover the lost notification)."""
    import redis

    from chat.models import Message

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis went away after the commit")

    monkeypatch.setattr("core.events.events_append", refuse)
    monkeypatch.setattr("core.jobs.enqueue_now", refuse)
    response = agent.client().post(
        "/api/send-message/", {"help_desk": str(help_desk.uuid), "message": "committed"}
    )
    assert response.status_code == 201, response.content[:300]
    assert Message.objects.filter(message="committed").exists()


def test_the_body_limit_is_installed_in_daphne() -> None:
    from daphne import http_protocol

    import core.asgi  # noqa: F401  (installs it)

    assert getattr(http_protocol.WebRequest, "bounded", False)
    protocol = http_protocol.HTTPFactory(server=None).buildProtocol(None)
    assert getattr(protocol.requestFactory, "bounded", False)


@pytest.fixture
def integration_key(org: Any) -> str:
    from core.services import api_key_create

    _, raw = api_key_create(name="monitoring", organization=org)
    return str(raw)
