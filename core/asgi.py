"""ASGI entry point: HTTP (Django) and websockets (Channels) in one daphne process."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

from core.safe_defaults import require_secret_key

require_secret_key()  # before anything serves: no production process on a published key

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from escalation.fastpath import TriggerFastPath  # noqa: E402


def _memoize_twisted_content_type_parsing() -> None:
    """Twisted parses every POST's Content-Type with `email.message` (only to spot form
    bodies, which daphne does not use): ~0.1 ms of CPU per request, a quarter of the
    event loop's time on a stream of small monitoring posts. It is a pure function of
    the header's bytes and clients send a handful of distinct values: memoize it."""
    import functools

    from twisted.web import http as twisted_http

    parse = getattr(twisted_http, "_parseContentType", None)
    if parse is not None and not hasattr(parse, "cache_info"):
        twisted_http._parseContentType = functools.lru_cache(maxsize=256)(parse)


_memoize_twisted_content_type_parsing()

from core.bounded_input import install_body_limit  # noqa: E402

# Bodies past MAX_REQUEST_BODY are refused by daphne's protocol layer as they arrive:
# daphne buffers a whole body before the ASGI app sees it (core/bounded_input.py).
install_body_limit()

# The console's JS and CSS (/static/) are served by daphne itself: no separate server.
# Well-formed monitoring posts of a known integration key are answered in front of
# Django (group-committed, see escalation/fastpath.py); everything else goes through.
http_app = TriggerFastPath(ASGIStaticFilesHandler(django_asgi_app))

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402
from core.realtime import DirectSocketMiddleware  # noqa: E402

websocket_urlpatterns = [
    # Any segment reaches the consumer, which checks credentials first and answers an
    # unknown organization like someone else's, 4403 (a route miss would be a bare
    # handshake failure that tells the two apart).
    re_path(r"^ws/chat/(?P<organization>[^/]{1,100})/$", ChatConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Outermost, so it sees daphne's own `send` (see core/realtime.py).
        "websocket": DirectSocketMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
