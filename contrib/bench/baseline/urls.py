"""POST /api/send-message/: what the seed did, a group_send per event, no database.

It publishes the same two events as the real endpoint (`new_message` then
`update_helpdesk`), with payloads shaped and sized like the real REST objects.
"""

import json
import uuid
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

GROUP = "org-bench"


def _message(text: str, help_desk: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {
        "created_at": now,
        "updated_at": now,
        "uuid": str(uuid.uuid4()),
        "message": text,
        "file": None,
        "type": "sent",
        "status": "sending",
        "help_desk": help_desk,
    }


def _help_desk(message: dict[str, object], help_desk: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {
        "created_at": now,
        "updated_at": now,
        "uuid": help_desk,
        "client": {
            "uuid": str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
            "name": "Client 0",
            "phone": "79160000000",
            "operator_code": "916",
            "tag": "",
            "timezone": "UTC",
            "promo_opt_out": False,
            "organization": "bench",
        },
        "last_message": message,
        "status": "open",
        "assignee": None,
        "unread_count": 0,
        "last_activity_at": now,
        "organization": "bench",
    }


@csrf_exempt
def send_message(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    desk = str(body["help_desk"])
    message = _message(str(body["message"]), desk)
    layer = get_channel_layer()
    assert layer is not None
    for event_type, data in (
        ("new_message", message),
        ("update_helpdesk", _help_desk(message, desk)),
    ):
        async_to_sync(layer.group_send)(
            GROUP, {"type": "chat.event", "event_type": event_type, "data": json.dumps(data)}
        )
    return JsonResponse(message, status=201)


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("api/send-message/", send_message),
    path("health/", health),
]
