"""ASGI entry point: HTTP (Django) and websockets (Channels) in one daphne process."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

from core.safe_defaults import require_secret_key

require_secret_key()  # before anything serves: no production process on a published key

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from core import daphne_support  # noqa: E402
from core.request_threads import ReusedRequestThreads  # noqa: E402
from escalation.fastpath import TriggerFastPath  # noqa: E402

# Bodies past MAX_REQUEST_BODY refused by daphne's protocol layer as they arrive, and
# Twisted's Content-Type parsing memoized: core/daphne_support.py, the one module that
# touches daphne/Twisted/autobahn internals (each listed there with its pin).
daphne_support.install()

# The console's JS and CSS (/static/) are served by daphne itself: no separate server.
# Well-formed monitoring posts of a known integration key are answered in front of
# Django (group-committed, see escalation/fastpath.py); everything else goes through.
# Each request's sync part runs in a reused thread, not a new one (core/request_threads.py).
http_app = TriggerFastPath(ReusedRequestThreads(ASGIStaticFilesHandler(django_asgi_app)))

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver, re_path  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402
from widget.consumers import VisitorConsumer  # noqa: E402

websocket_urlpatterns = [
    # Any segment reaches the consumer, which checks credentials first and answers an
    # unknown organization like someone else's, 4403 (a route miss would be a bare
    # handshake failure that tells the two apart).
    re_path(r"^ws/chat/(?P<organization>[^/]{1,100})/$", ChatConsumer.as_asgi()),
    # The website widget's visitors (widget/consumers.py): Origin and token checked there.
    re_path(r"^ws/widget/(?P<token>[^/]{1,100})/$", VisitorConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Outermost, so it sees daphne's own `send` (core/daphne_support.py). No
        # Channels AuthMiddlewareStack: it looked the session and its user up in a
        # database thread hop per socket, before the consumer ran, even for `?token=`
        # sockets. The chat consumer reads the session cookie itself and authenticates
        # a storm's cookies in batches (chat/ws_auth.py, chat/ws_sessions.py); the
        # widget's visitors carry no session.
        "websocket": daphne_support.DirectSocketMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

# Everything loaded so far (Django, DRF, every app's modules, and the URLconf with every
# view, imported now rather than on the first request) lives as long as the process.
# Frozen, the cyclic garbage collector stops walking it: a full collection walked these
# hundreds of thousands of objects each time, a pause of ~100 ms seen in the widget
# benchmark's p99 (BENCHMARKS.md); now it walks only what was created since.
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()
# The thresholds stay Python's: full collections 10 times rarer (700, 10, 100) let each
# request's cyclic garbage pile up in the oldest generation, and the full collection
# that then walked it doubled the help-desk list's p99 (contrib/bench/rest_ratio.py).
