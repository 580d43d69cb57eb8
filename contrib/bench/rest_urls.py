"""The platform's URLs plus `/bench/bare/`: the floor of this stack (daphne, the ASGI
handler, the same middleware, a sync view's thread hop), measured beside the API."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare/", bare), path("", include("core.urls"))]
