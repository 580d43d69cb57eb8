"""The baseline ASGI app: Django HTTP + a consumer that joins one channels-redis group."""

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "contrib.bench.baseline.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from contrib.bench.baseline.urls import GROUP  # noqa: E402


class SeedConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "hello", "last_event_id": 0}))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def chat_event(self, event: dict[str, str]) -> None:
        await self.send(text_data=json.dumps({"type": event["event_type"], "data": event["data"]}))


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [re_path(r"^ws/chat/(?P<organization>[a-z0-9-]+)/$", SeedConsumer.as_asgi())]
        ),
    }
)
