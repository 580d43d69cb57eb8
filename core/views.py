"""Platform views: health, Prometheus metrics, organization list."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.request import Request
from rest_framework.response import Response

from core import scopes
from core.access import organizations_for
from core.api import ListView
from core.logging import get_logger
from core.metrics import scrape
from core.models import Membership, Organization
from core.redis import get_redis
from core.serializers import OrganizationSerializer

log = get_logger(__name__)


def health(request: HttpRequest) -> JsonResponse:
    # Each part is "ok" or "unavailable": the exception's text names hosts and ports,
    # so it goes to the log, never to whoever asks (docs/operations.md).
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, don't raise: this is what the endpoint is for
        checks["database"] = "unavailable"
        log.warning("health_check_failed", dependency="database", error=type(exc).__name__)
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = "unavailable"
        log.warning("health_check_failed", dependency="redis", error=type(exc).__name__)
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503
    )


def metrics(request: HttpRequest) -> HttpResponse:
    # Counters and gauges tell an outsider which organizations exist and how busy they
    # are: only a scraper presenting METRICS_TOKEN reads them, and with no token
    # configured nobody does (the answer says how to configure one).
    token = settings.METRICS_TOKEN
    if not token:
        return _metrics_error(403, "METRICS_TOKEN is not set: /metrics is disabled.")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), token.encode()
    ):
        return _metrics_error(401, "Send `Authorization: Bearer <METRICS_TOKEN>`.")
    # Every process's counters (multiprocess files) plus the database gauges.
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)


def _metrics_error(status: int, message: str) -> JsonResponse:
    code = "not_authenticated" if status == 401 else "permission_denied"
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


class OrganizationListView(ListView):
    required_scopes = {"GET": scopes.READ}
    serializer_class = OrganizationSerializer
    ordering = "slug"

    def list_queryset(self, organization: Organization | None) -> QuerySet[Organization]:
        return organizations_for(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        user_id = getattr(self.request.user, "pk", None) or 0
        roles = dict(
            Membership.objects.filter(user_id=user_id).values_list("organization_id", "role")
        )
        return {**super().get_serializer_context(), "roles": roles}

    @extend_schema(summary="Organizations the caller belongs to")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
