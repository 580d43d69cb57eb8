"""The ASGI fast path for monitoring posts (escalation/fastpath.py), in process.

It must answer exactly what the Django views answer, record the same rows, and hand
everything it is not sure about to Django. The database thread needs committed data,
so these tests use `transactional_db`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.utils import timezone

from core.models import ApiKey
from core.redis import get_redis
from escalation.fastpath import TriggerFastPath
from escalation.models import TriggerBatch
from escalation.payloads import PayloadInvalid, parse_alertmanager, parse_triggers
from tests.conftest import wait_until
from tests.escalation.conftest import SEED
from tests.escalation.test_ingestion import alertmanager

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app() -> Iterator[TriggerFastPath]:
    from core.asgi import http_app

    fast = TriggerFastPath(http_app.app)  # a fresh database thread per test
    yield fast
    fast.committer.close()


def _scope(
    path: str,
    key: str | None,
    length: int | None,
    content_type: bytes = b"application/json",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> dict:
    headers = [(b"host", b"testserver"), (b"content-type", content_type), *extra]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    if key is not None:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _call(
    app: Any, path: str, body: bytes, key: str | None, chunked: bool = False, **kw: Any
) -> tuple[int, Any]:
    comm = ApplicationCommunicator(app, _scope(path, key, None if chunked else len(body), **kw))
    await comm.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await comm.receive_output(10)
    chunks = []
    while True:
        message = await comm.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(10)
    raw = b"".join(chunks)
    try:
        return start["status"], json.loads(raw) if raw else None
    except ValueError:  # Django's own HTML error pages (a disallowed host)
        return start["status"], raw


def post(app: Any, path: str, payload: Any, key: str | None, **kw: Any) -> tuple[int, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return asyncio.run(_call(app, path, body, key, **kw))


def _without_ids(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "batches"}


def _rows() -> list[tuple]:
    return list(
        TriggerBatch.objects.order_by("id").values_list(
            "source", "kind", "triggers", "alerts", "matched_rules", "unmatched"
        )
    )


PAYLOADS = [
    ("/api/triggers/", SEED),
    ("/api/triggers/", {"gatilhos": list(reversed(SEED["gatilhos"]))}),
    (
        "/api/triggers/",
        {
            "triggers": [
                {"service": " login ", "status": 404},
                {"service": "billing", "status": "500"},
                {"service": "login", "status": 503},
                {"service": "login", "status": 503, "extra": "ignored"},
            ]
        },
    ),
    ("/api/triggers/", {"triggers": [{"service": "search", "status": 502}]}),
    (
        "/api/alertmanager/",
        alertmanager(
            "firing",
            ("firing", {"service": "login", "status": "503"}),
            ("firing", {"job": "login", "code": " 404 "}),
            ("firing", {"instance": "db-1"}),
            ("resolved", {"service": "billing", "status": "500"}),
            ("resolved", {"service": "login", "status_code": "nope"}),
        ),
    ),
    ("/api/alertmanager/", alertmanager("firing", ("firing", {"instance": "db-1"}))),
]


@pytest.mark.parametrize(("path", "payload"), PAYLOADS)
def test_fast_path_answers_and_records_what_the_django_view_does(
    app, rule, monitoring_key, settings, monkeypatch, path, payload
):
    # given: the Django view's answer and rows for this payload
    settings.TRIGGER_FASTPATH = False
    view_status, view_body = post(app, path, payload, monitoring_key)
    view_rows = _rows()
    TriggerBatch.objects.all().delete()
    # when: the fast path answers, with the Django views broken to prove they are not used
    settings.TRIGGER_FASTPATH = True

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Django view answered")

    monkeypatch.setattr("escalation.api.TriggersView.post", broken)
    monkeypatch.setattr("escalation.api.AlertmanagerView.post", broken)
    fast_status, fast_body = post(app, path, payload, monitoring_key)
    # then
    assert (fast_status, _without_ids(fast_body)) == (view_status, _without_ids(view_body))
    assert view_status == 202
    assert _rows() == view_rows
    assert fast_body["batches"] == list(
        TriggerBatch.objects.order_by("id").values_list("id", flat=True)
    )


def _alert(**change: Any) -> dict[str, Any]:
    alert = {"status": "firing", "labels": {"service": "a", "status": "503"}}
    return {"version": "4", "status": "firing", "alerts": [{**alert, **change}]}


REFUSED = [
    ("/api/triggers/", None),
    ("/api/alertmanager/", None),
    ("/api/triggers/", {}),
    ("/api/triggers/", []),
    ("/api/triggers/", [{"servico": "login"}]),
    ("/api/triggers/", {"gatilhos": []}),
    ("/api/triggers/", {"gatilhos": None}),
    ("/api/triggers/", {"gatilhos": "login"}),
    ("/api/triggers/", {"gatilhos": [None, ["login", "503"], "x"]}),
    ("/api/triggers/", {"gatilhos": [{"servico": "login"}, {"retorno": "503"}]}),
    ("/api/triggers/", {"gatilhos": [{"servico": "login", "retorno": "99"}]}),
    ("/api/triggers/", {"gatilhos": [{"servico": "login", "retorno": True}]}),
    ("/api/triggers/", {"gatilhos": [{"servico": "login", "retorno": 50.3}]}),
    ("/api/triggers/", {"gatilhos": [{"servico": None, "retorno": None}]}),
    ("/api/triggers/", {"triggers": [{"service": "  ", "status": 503}]}),
    ("/api/triggers/", {"triggers": [{"service": "x" * 101, "status": 503}]}),
    ("/api/triggers/", {"triggers": [{"service": {"x": 1}, "status": [503]}]}),
    ("/api/triggers/", {"triggers": [{"service": "s", "status": 500}] * 1001}),
    ("/api/triggers/", {"triggers": SEED["gatilhos"], "gatilhos": SEED["gatilhos"]}),
    ("/api/triggers/", {"triggers": [{"service": "s", "status": 500}], "gatilhos": []}),
    ("/api/alertmanager/", {}),
    ("/api/alertmanager/", {**_alert(), "version": "3"}),
    ("/api/alertmanager/", {**_alert(), "version": None, "status": "exploded\u2028"}),
    ("/api/alertmanager/", {**_alert(), "receiver": ["r"], "groupKey": None}),
    ("/api/alertmanager/", {**_alert(), "alerts": []}),
    ("/api/alertmanager/", {**_alert(), "alerts": {"status": "firing"}}),
    ("/api/alertmanager/", {**_alert(), "alerts": [None, 1]}),
    ("/api/alertmanager/", _alert(status="gone", labels=["service"])),
    ("/api/alertmanager/", _alert(labels={"service": {"x": 1}, "status": None})),
    ("/api/alertmanager/", _alert(labels={"": "a", "status": "503"})),
    ("/api/alertmanager/", _alert(annotations="x", startsAt=[], fingerprint={})),
]


@pytest.mark.parametrize(("path", "payload"), REFUSED)
def test_a_refused_payload_gets_the_same_400_from_the_fast_path_and_the_view(
    app, org, monitoring_key, settings, monkeypatch, path, payload
):
    # given: the DRF view's answer (its serializer delegates to escalation.payloads)
    settings.TRIGGER_FASTPATH = False
    view_status, view_body = post(app, path, payload, monitoring_key)
    assert view_status == 400 and view_body["error"]["code"] == "validation_error"
    # when: the fast path answers, with the Django views broken to prove they are not used
    settings.TRIGGER_FASTPATH = True

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Django view answered")

    monkeypatch.setattr("escalation.api.TriggersView.post", broken)
    monkeypatch.setattr("escalation.api.AlertmanagerView.post", broken)
    fast = post(app, path, payload, monitoring_key)
    # then: the same answer, and the field errors are the one parser's
    assert fast == (view_status, view_body)
    parse = parse_triggers if path == "/api/triggers/" else parse_alertmanager
    with pytest.raises(PayloadInvalid) as refused:
        parse(payload)
    assert json.loads(json.dumps(refused.value.fields)) == view_body["error"]["fields"]
    assert TriggerBatch.objects.count() == 0


def test_a_refused_payload_counts_against_the_rate_limit_as_in_the_view(
    app, org, monitoring_key, settings
):
    settings.TRIGGER_RATE = "2/day"
    answers = [post(app, "/api/triggers/", {}, monitoring_key)[0] for _ in range(3)]
    assert answers == [400, 400, 429]


def test_alertmanager_version_4_as_a_number_is_taken_as_the_string(app, org, monitoring_key):
    payload = {**_alert(), "version": 4}  # DRF's CharField took 4 as "4": so does the parser
    assert post(app, "/api/alertmanager/", payload, monitoring_key)[0] == 202


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", b"application/json"),
        (b"NaN", b"application/json"),
        (b"", b"application/json"),
    ],
)
def test_malformed_json_falls_through_to_a_400(app, org, monitoring_key, raw, content_type):
    status, body = post(app, "/api/triggers/", raw, monitoring_key, content_type=content_type)
    assert status == 400 and body["error"]["code"] in ("parse_error", "validation_error")


def test_other_content_types_are_left_to_django(app, org, monitoring_key):
    status, body = post(
        app, "/api/triggers/", json.dumps(SEED).encode(), monitoring_key, content_type=b"text/plain"
    )
    assert status == 415 and "error" in body


def test_no_unknown_or_agent_key_is_answered_by_the_fast_path(app, org, agent):
    assert post(app, "/api/triggers/", SEED, None)[0] in (401, 403)
    assert post(app, "/api/triggers/", SEED, "nope.nope")[0] == 401
    # an agent key needs ?organization= (Django's rule), not the fast path's
    status, body = post(app, "/api/triggers/", SEED, agent.key)
    assert status == 400 and "organization" in body["error"]["fields"]
    assert TriggerBatch.objects.count() == 0


def test_a_revoked_key_stops_working_within_the_cache_ttl(app, org, monitoring_key, settings):
    settings.TRIGGER_AUTH_CACHE_TTL = 0.2
    assert post(app, "/api/triggers/", SEED, monitoring_key)[0] == 202
    # revoked behind the application's back (no signal, no service): only the TTL helps
    ApiKey.objects.filter(organization=org).update(revoked_at=timezone.now())
    wait_until(lambda: post(app, "/api/triggers/", SEED, monitoring_key)[0] == 401, timeout=5)


def test_concurrent_posts_are_group_committed_and_all_recorded(app, rule, monitoring_key):
    async def burst() -> list[tuple[int, Any]]:
        body = json.dumps(SEED).encode()
        return await asyncio.gather(
            *(_call(app, "/api/triggers/", body, monitoring_key) for _ in range(30))
        )

    answers = asyncio.run(burst())
    assert [status for status, _ in answers] == [202] * 30
    ids = sorted(body["batches"][0] for _, body in answers)
    assert ids == list(TriggerBatch.objects.order_by("id").values_list("id", flat=True))
    assert len(set(ids)) == 30
    # the evaluator was woken (the flag of the organization is set, or a job took it)
    from escalation.evaluate import flag_key, wake_key

    client = get_redis()
    org_id = rule.organization_id
    wait_until(lambda: client.exists(flag_key(org_id), wake_key(org_id)))


def test_a_failed_group_commit_is_retried_by_the_django_view(
    app, rule, monitoring_key, monkeypatch
):
    from django.db import OperationalError

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr("escalation.group_commit.triggers_ingest_many", locked)
    status, body = post(app, "/api/triggers/", SEED, monitoring_key)
    assert status == 202 and [m["rule"] for m in body["matched"]] == ["0001"]
    assert TriggerBatch.objects.count() == 1


def test_a_post_arriving_while_the_idle_wake_up_runs_is_not_left_waiting(app, rule, monitoring_key):
    import threading
    import time

    kicking = threading.Event()
    original = app.committer._kick

    def slow_kick() -> None:
        kicking.set()
        time.sleep(0.3)
        original()

    app.committer._kick = slow_kick  # type: ignore[method-assign]
    body = json.dumps(SEED).encode()

    async def two_posts() -> list[tuple[int, Any]]:
        first = asyncio.ensure_future(_call(app, "/api/triggers/", body, monitoring_key))
        while not kicking.is_set():  # the first post is answered, its wake-up is running
            await asyncio.sleep(0.01)
        second = await _call(app, "/api/triggers/", body, monitoring_key)
        return [await first, second]

    answers = asyncio.run(asyncio.wait_for(two_posts(), timeout=20))
    assert [status for status, _ in answers] == [202, 202]
    assert TriggerBatch.objects.count() == 2


def test_twisted_content_type_parsing_is_memoized_and_still_right() -> None:
    from twisted.web import http as twisted_http

    import core.asgi  # noqa: F401  (installs it)

    parse = twisted_http._parseContentType
    assert hasattr(parse, "cache_info")
    assert parse(b"application/json; charset=utf-8") == b"application/json"
    assert parse(b"Multipart/Form-Data; boundary=x") == b"multipart/form-data"
    assert parse(b"application/x-www-form-urlencoded") == b"application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("case", "kw"),
    [
        ("chunked body (no Content-Length): DRF reads nothing", {"chunked": True}),
        ("two Authorization headers", {"extra": ((b"authorization", b"Bearer x.y"),)}),
    ],
)
def test_requests_django_would_answer_differently_are_left_to_it(
    app, org, monitoring_key, case, kw
):
    body = json.dumps(SEED).encode()
    status, _ = asyncio.run(_call(app, "/api/triggers/", body, monitoring_key, **kw))
    assert status in (400, 401), case
    assert TriggerBatch.objects.count() == 0


def test_a_host_outside_allowed_hosts_is_left_to_django(app, org, monitoring_key, settings):
    settings.ALLOWED_HOSTS = ["platform.example"]
    status, _ = asyncio.run(_call(app, "/api/triggers/", json.dumps(SEED).encode(), monitoring_key))
    assert status == 400
    assert TriggerBatch.objects.count() == 0


def test_a_failed_key_lookup_is_left_to_django(app, rule, monitoring_key, monkeypatch):
    import threading

    from django.db import OperationalError

    import core.auth

    real = core.auth.api_key_lookup

    def flaky(raw: str) -> Any:
        if threading.current_thread().name.startswith("trigger-db"):
            raise OperationalError("server closed the connection unexpectedly")
        return real(raw)

    monkeypatch.setattr(core.auth, "api_key_lookup", flaky)
    status, body = post(app, "/api/triggers/", SEED, monitoring_key)
    assert status == 202 and [m["rule"] for m in body["matched"]] == ["0001"]
    assert TriggerBatch.objects.count() == 1
