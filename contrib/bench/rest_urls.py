"""The platform's URLs plus two bench-only floors, measured beside the API:

- `/bench/bare/`: a bare Django view, the floor of this stack (daphne, the ASGI handler,
  the same middleware, a sync view's thread hop);
- `/bench/drf/`: a DRF view under the API's own policy (API key authentication, its
  database lookup, the scope permission, the Redis rate-limit counter, JSON rendering)
  that returns a constant: what every API request pays before it does its own work."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import scopes


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


class DrfFloor(APIView):
    required_scopes = {"GET": scopes.READ}

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/drf/", DrfFloor.as_view()),
    path("", include("core.urls")),
]
