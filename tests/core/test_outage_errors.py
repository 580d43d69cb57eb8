"""An outage of Redis or the database is a 503 `service_unavailable` in the documented
error shape, naming the part that is down and never its host (issue #10 item 1)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from core.errors import DependencyUnavailableMiddleware, exception_handler


@pytest.mark.parametrize(
    ("exc", "dependency"),
    [
        (redis.ConnectionError("Error 111 connecting to 10.1.2.3:6379."), "redis"),
        (redis.TimeoutError("Timeout reading from 10.1.2.3:6379"), "redis"),
        (OperationalError('connection to server at "db.internal" failed'), "database"),
        (InterfaceError("connection already closed"), "database"),
    ],
)
def test_an_outage_answers_503_service_unavailable(exc: Exception, dependency: str) -> None:
    request = RequestFactory().get("/api/help-desks/")
    response: Any = exception_handler(exc, {"request": request})
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.data == {
        "error": {
            "code": "service_unavailable",
            "message": f"A backing service ({dependency}) is unavailable; retry shortly.",
        }
    }
    # outside DRF (console, admin): the same answer from the middleware
    middleware = DependencyUnavailableMiddleware(lambda r: None)  # type: ignore[arg-type,return-value]
    plain = middleware.process_exception(request, exc)
    assert plain is not None and plain.status_code == 503
    assert b"service_unavailable" in plain.content
    assert b"10.1.2.3" not in plain.content and b"db.internal" not in plain.content


def test_a_locked_sqlite_database_is_still_busy_not_down() -> None:
    response: Any = exception_handler(OperationalError("database is locked"), {})
    assert response.status_code == 503
    assert response.data["error"]["code"] == "database_busy"


def test_other_errors_are_left_alone() -> None:
    middleware = DependencyUnavailableMiddleware(lambda r: None)  # type: ignore[arg-type,return-value]
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("bug")) is None


@pytest.mark.django_db
def test_health_names_the_part_that_is_down_without_its_host(client: Any, settings: Any) -> None:
    from core.redis import get_redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    get_redis.cache_clear()
    try:
        health = client.get("/health/")
    finally:
        get_redis.cache_clear()
    assert health.status_code == 503
    assert health.json() == {"status": "degraded", "database": "ok", "redis": "unavailable"}
    assert b"127.0.0.1" not in health.content
