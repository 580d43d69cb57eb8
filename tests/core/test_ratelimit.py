"""Rate limits (core/ratelimit.py, core/throttles.py), the way an abuser meets them.

Counters live in Redis, so two daphne processes share them; every refusal is a 429
with `Retry-After` and the usual error shape. Limits here use day-long windows so a
window boundary never falls inside a test (no sleeps, no flakiness); the window's
own arithmetic is checked with time-machine.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import time_machine
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.test import Client as DjangoClient
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from core.ratelimit import ahit, hit
from escalation.models import TriggerBatch
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

SEED = {"gatilhos": [{"servico": "login", "retorno": "503"}]}


@pytest.fixture(autouse=True)
def _fresh_counters(redis_client: Any) -> None:
    """Ids (hence buckets) repeat from test to test: start each one with no counts."""
    keys = list(redis_client.scan_iter("rl:*"))
    if keys:
        redis_client.delete(*keys)


def _refusals(surface: str) -> float:
    """`http_rate_limited_total{surface=...}` of this process (what /metrics adds up)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("http_rate_limited_total", {"surface": surface}) or 0.0


def _assert_429(response: Any, window: int = 86400) -> int:
    assert response.status_code == 429, (response.status_code, response.content)
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= window, retry_after
    assert json.loads(response.content) == {
        "error": {
            "code": "rate_limited",
            "message": f"Too many requests; retry in {retry_after} s.",
        }
    }
    return int(retry_after)


# --- the counter ------------------------------------------------------------------------


def test_the_window_counts_to_its_limit_then_opens_again() -> None:
    with time_machine.travel(1_800_000_000.0 + 10, tick=False) as clock:  # 10 s into a minute
        assert hit("t:unit", limit=2, window=60) == 0
        assert hit("t:unit", limit=2, window=60) == 0
        assert hit("t:unit", limit=2, window=60) == pytest.approx(50.0)
        clock.shift(49.5)
        assert hit("t:unit", limit=2, window=60) == pytest.approx(0.5)
        clock.shift(0.5)  # the next window
        assert hit("t:unit", limit=2, window=60) == 0


def test_async_hits_count_in_the_same_bucket() -> None:
    assert hit("t:both", limit=2, window=86400) == 0
    assert asyncio.run(ahit("t:both", limit=2, window=86400)) == 0
    assert asyncio.run(ahit("t:both", limit=2, window=86400)) > 0
    assert hit("t:both", limit=2, window=86400) > 0


def test_a_burst_of_concurrent_async_hits_is_counted_exactly_in_few_round_trips(
    settings: Any, redis_client: Any
) -> None:
    settings.RATELIMIT_REDIS_TIMEOUT = 10.0  # a loaded machine must not fail it open

    def scripts_run() -> int:
        stats = redis_client.info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))

    async def burst() -> list[float]:
        return await asyncio.gather(*(ahit("t:burst", limit=50, window=86400) for _ in range(200)))

    before = scripts_run()
    waits = asyncio.run(burst())
    assert sum(1 for wait in waits if wait == 0) == 50
    # hits arriving while their key's round trip is under way share the next one
    assert 1 <= scripts_run() - before < 20


def test_a_limit_of_zero_is_off() -> None:
    assert all(hit("t:off", limit=0, window=60) == 0 for _ in range(5))


def test_redis_down_lets_requests_through(settings: Any, agent: Any) -> None:
    # given a tiny limit and a counter store that refuses connections
    settings.API_KEY_RATE = "1/day"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    # then nothing is refused: the counters fail open, API and login alike
    assert all(hit("t:down", limit=1, window=60) == 0 for _ in range(3))
    assert asyncio.run(ahit("t:down", limit=1, window=60)) == 0
    for _ in range(3):
        assert agent.client().get("/api/organizations/").status_code == 200
    settings.LOGIN_RATE = "1/day"
    browser = DjangoClient()
    for _ in range(2):
        assert browser.post("/login/", {"username": "alice", "password": "x"}).status_code == 200
    assert browser.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302


def test_counting_resumes_when_redis_is_back(settings: Any) -> None:
    real = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert hit("t:back", limit=1, window=86400) == 0  # fails open (and skips it a while)
    settings.REDIS_URL = real
    assert hit("t:back", limit=1, window=86400) == 0
    assert hit("t:back", limit=1, window=86400) > 0


# --- the API (DRF throttle) ---------------------------------------------------------------


def test_api_key_limit_is_shared_by_two_web_processes(start_web: Any, agent: Any, make_agent: Any):
    # given two web processes sharing Redis, and a key allowed 6 requests
    webs = [start_web(API_KEY_RATE="6/day"), start_web(API_KEY_RATE="6/day")]
    clients = [agent.http(web.url) for web in webs]
    # when 6 requests go alternately to each process, then a 7th to either
    for n in range(6):
        assert clients[n % 2].get("/api/organizations/").status_code == 200
    # then both refuse from the 7th on, with Retry-After and the error shape
    _assert_429(clients[0].get("/api/organizations/"))
    _assert_429(clients[1].get("/api/organizations/"))
    # and another key is counted on its own
    bob = make_agent("bob", agent.organization)
    assert bob.http(webs[1].url).get("/api/organizations/").status_code == 200


def test_session_users_are_limited_per_user(settings: Any, agent: Any, make_agent: Any) -> None:
    settings.USER_RATE = "2/day"
    settings.API_KEY_RATE = "100/day"  # the same user's key is another bucket
    browser = APIClient()
    browser.force_login(agent.user)
    assert [browser.get("/api/organizations/").status_code for _ in range(2)] == [200, 200]
    refused = _refusals("api")
    _assert_429(browser.get("/api/organizations/"))
    assert _refusals("api") == refused + 1
    assert agent.client().get("/api/organizations/").status_code == 200
    other = APIClient()
    other.force_login(make_agent("bob", agent.organization).user)
    assert other.get("/api/organizations/").status_code == 200


class _Open(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


def test_anonymous_requests_are_limited_per_client_address(settings: Any) -> None:
    settings.ANON_RATE = "2/day"
    factory, view = APIRequestFactory(), _Open.as_view()

    def get(address: str) -> Any:
        response = view(factory.get("/open/", REMOTE_ADDR=address))
        response.render()
        return response

    assert [get("203.0.113.7").status_code for _ in range(2)] == [200, 200]
    _assert_429(get("203.0.113.7"))
    assert get("203.0.113.8").status_code == 200
    # an IPv6 host is counted by its /64: rotating addresses inside it does not help
    assert [get(f"2001:db8::{n}").status_code for n in (1, 2)] == [200, 200]
    _assert_429(get("2001:db8::3"))
    assert get("2001:db8:0:1::1").status_code == 200


def test_signed_file_links_have_their_own_per_address_limit(settings: Any) -> None:
    # given anonymous requests limited to 1, but signed file links to 3 per address
    settings.ANON_RATE = "1/day"
    settings.FILE_LINK_RATE = "3/day"
    recipient = APIClient(REMOTE_ADDR="203.0.113.50")  # a carrier NAT address
    # then 3 links (valid or not) are answered, the 4th is refused
    for _ in range(3):
        assert recipient.get("/api/files/not-a-valid-token/").status_code != 429
    _assert_429(recipient.get("/api/files/not-a-valid-token/"))


# --- logins -----------------------------------------------------------------------------


@pytest.fixture
def auth_signals() -> Any:
    """Every password check Django makes (success or failure) during the test."""
    checks: list[str] = []

    def failed(sender: Any, credentials: Any, **kw: Any) -> None:
        checks.append("failed")

    def logged_in(sender: Any, user: Any, **kw: Any) -> None:
        checks.append("logged_in")

    user_login_failed.connect(failed)
    user_logged_in.connect(logged_in)
    yield checks
    user_login_failed.disconnect(failed)
    user_logged_in.disconnect(logged_in)


def _page(response: Any) -> str:
    """The page without what differs between two identical answers (token, seconds)."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())
    return re.sub(r"Try again in \d+ seconds", "", html)


def _login(path: str, username: str, password: str, address: str) -> Any:
    return DjangoClient(REMOTE_ADDR=address).post(
        path, {"username": username, "password": password, "next": "/"}
    )


@pytest.mark.parametrize("path", ["/login/", "/", "/admin/login/"])
def test_failed_logins_are_limited_per_username(
    settings, agent, staff, django_user_model, auth_signals, path
):
    settings.LOGIN_RATE = "3/day"
    django_user_model.objects.create_superuser("root2", "root2@example.com", "pw-root2")
    user = "root" if path.startswith("/admin") else "alice"
    # given 3 wrong passwords for one username, each from another address
    for n in range(3):
        assert _login(path, user, "wrong", f"198.51.100.{n}").status_code == 200
    assert auth_signals == ["failed"] * 3
    # when the right password comes next, from a fresh address
    refused = _refusals("login")
    limited = _login(path, user, f"pw-{user}", "198.51.100.99")
    # then it is refused like a wrong one, without the password even being checked
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 86400
    assert "Too many failed logins" in limited.content.decode()
    assert "_auth_user_id" not in limited.client.session
    assert auth_signals == ["failed"] * 3
    wrong = _login(path, user, "wrong", "198.51.100.98")
    assert (wrong.status_code, _page(wrong)) == (limited.status_code, _page(limited))
    assert _refusals("login") == refused + 2
    # and another username is not affected
    assert _login(path, "root2", "pw-root2", "198.51.100.97").status_code == 302


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_failed_logins_are_limited_per_address(settings, agent, staff, auth_signals, path):
    settings.LOGIN_RATE = "3/day"
    user = "root" if path.startswith("/admin") else "alice"
    # given 3 wrong passwords from one address, each for another username
    for name in ("u1", "u2", "u3"):
        assert _login(path, name, "wrong", "192.0.2.1").status_code == 200
    # then that address is refused even the right password of a real user
    assert _login(path, user, f"pw-{user}", "192.0.2.1").status_code == 429
    assert auth_signals == ["failed"] * 3
    # while the user logs in from elsewhere
    assert _login(path, user, f"pw-{user}", "192.0.2.2").status_code == 302


def test_successful_logins_do_not_count(settings: Any, agent: Any) -> None:
    settings.LOGIN_RATE = "2/day"
    for _ in range(5):
        assert _login("/login/", "alice", "pw-alice", "192.0.2.10").status_code == 302
    assert _login("/login/", "alice", "wrong", "192.0.2.10").status_code == 200


def _console_login(http: httpx.Client, password: str) -> httpx.Response:
    page = http.get("/login/")
    assert page.status_code == 200
    return http.post(
        "/login/",
        data={
            "username": "alice",
            "password": password,
            "next": "/",
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
        headers={"Referer": f"{http.base_url}login/"},
    )


def test_login_flood_over_two_web_processes(start_web: Any, agent: Any) -> None:
    # given two web processes and 4 failed logins allowed
    webs = [start_web(LOGIN_RATE="4/day"), start_web(LOGIN_RATE="4/day")]
    browsers = [httpx.Client(base_url=web.url, timeout=30) for web in webs]
    # when a guesser spreads 4 wrong passwords over both
    for n in range(4):
        assert _console_login(browsers[n % 2], "wrong").status_code == 200
    # then the right one is refused by either process: 429, Retry-After, a message
    for browser in browsers:
        refused = _console_login(browser, "pw-alice")
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 86400
        assert "Too many failed logins" in refused.text
        assert "sessionid" not in browser.cookies


# --- monitoring posts -------------------------------------------------------------------


@pytest.fixture
def monitoring_key(org: Any) -> str:
    from core.services import api_key_create

    _, raw = api_key_create(name="monitoring", organization=org)
    return raw


class _Django:
    """The fast path's inner application, counting what reaches it."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def _fast_post(app: Any, key: str, payload: Any = SEED) -> tuple[int, dict[bytes, bytes], Any]:
    body = json.dumps(payload).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/triggers/",
        "raw_path": b"/api/triggers/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def call() -> tuple[int, dict[bytes, bytes], Any]:
        comm = ApplicationCommunicator(app, scope)
        await comm.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await comm.receive_output(10)
        message = await comm.receive_output(10)
        await comm.wait(10)
        return start["status"], dict(start["headers"]), json.loads(message["body"])

    return asyncio.run(call())


@pytest.mark.django_db(transaction=True)
def test_the_fast_path_answers_429_itself_and_shares_the_django_views_bucket(
    settings: Any, monitoring_key: str
) -> None:
    from core.asgi import http_app
    from escalation.fastpath import TriggerFastPath

    settings.TRIGGER_RATE = "4/day"
    settings.API_KEY_RATE = "1/day"  # monitoring posts use TRIGGER_RATE instead
    django = _Django(http_app.app)
    fast = TriggerFastPath(django)
    monitoring = APIClient()
    monitoring.credentials(HTTP_AUTHORIZATION=f"Bearer {monitoring_key}")
    try:
        # given 2 posts answered by the fast path and 2 by the Django view (one key)
        assert [_fast_post(fast, monitoring_key)[0] for _ in range(2)] == [202, 202]
        assert django.calls == 0
        for _ in range(2):
            assert monitoring.post("/api/triggers/", SEED, format="json").status_code == 202
        # when a 5th comes to the fast path
        refused = _refusals("triggers")
        status, headers, body = _fast_post(fast, monitoring_key)
        # then the fast path itself refuses it, as DRF would
        assert django.calls == 0
        assert status == 429
        retry_after = headers[b"retry-after"].decode()
        assert retry_after.isdigit() and 1 <= int(retry_after) <= 86400
        assert headers[b"content-type"] == b"application/json"
        assert body == {
            "error": {
                "code": "rate_limited",
                "message": f"Too many requests; retry in {retry_after} s.",
            }
        }
        # and so does the Django view (alertmanager too: one monitoring limit per key)
        _assert_429(monitoring.post("/api/triggers/", SEED, format="json"))
        _assert_429(monitoring.post("/api/alertmanager/", {"version": "4"}, format="json"))
        assert TriggerBatch.objects.count() == 4
        assert _refusals("triggers") == refused + 3
    finally:
        fast.committer.close()


def test_monitoring_posts_over_the_limit_through_daphne(start_web: Any, monitoring_key: str):
    web = start_web(TRIGGER_RATE="3/day")
    http = httpx.Client(
        base_url=web.url, headers={"Authorization": f"Bearer {monitoring_key}"}, timeout=30
    )
    assert [http.post("/api/triggers/", json=SEED).status_code for _ in range(3)] == [202] * 3
    _assert_429(http.post("/api/triggers/", json=SEED))
    # a malformed post (left to the Django view by the fast path) is refused too
    _assert_429(http.post("/api/triggers/", json={"gatilhos": "nope"}))
    assert TriggerBatch.objects.count() == 3
