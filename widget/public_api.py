"""The widget's public HTTP API: /widget/api/<inbox token>/...

No session, no API key: the inbox token names the inbox, the visitor token (header
`X-Visitor-Token`, from `start`) names the visitor. Every request must come from a page
on one of the inbox's allowed origins (the browser's `Origin`; a request without one is
refused too), is answered with CORS headers for that origin only, and is counted per
client address and, once known, per visitor (core/ratelimit.py).

Every answer, errors included, is in the visitor's language: the browser's
(Accept-Language) when the platform speaks it, else the inbox's default
(core.i18n.visitor_language); `strings/` gives the widget its texts in that language.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone, translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.representations import HelpDeskSerializer, MessageSerializer
from chat.visitors import visitor_seen_message
from core.errors import ApplicationError
from core.i18n import catalog_strings, visitor_language
from core.ratelimit import hit, rate
from core.throttles import RATE_LIMITED, client_address
from widget import inboxes, selectors, services
from widget.models import Visitor, WebInbox
from widget.representations import (
    WidgetConfigSerializer,
    WidgetMessageSerializer,
    WidgetRatingSerializer,
    WidgetReadSerializer,
    WidgetStartSerializer,
    visitor_conversation,
    visitor_message,
)
from widget.serializers import RatingWriteSerializer, SendSerializer, StartSerializer

VISITOR_HEADER = "X-Visitor-Token"
_PREFLIGHT_MAX_AGE = "600"


def rate_check(bucket: str, setting: str) -> None:
    limit, window = rate(setting)
    wait = hit(bucket, limit=limit, window=window)
    if wait:
        RATE_LIMITED.labels("widget").inc()
        raise exceptions.Throttled(wait=wait)  # 429 + Retry-After (core.errors)


class WidgetView(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes = [JSONParser]
    methods = "POST"
    web_inbox: WebInbox
    origin: str = ""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        rate_check(f"widget:ip:{client_address(request._request)}", "WIDGET_IP_RATE")
        self.web_inbox = selectors.web_inbox_by_token(token=kwargs["token"])
        # Before any refusal of this inbox's: the visitor reads it in their language.
        translation.activate(visitor_language(request._request, self.web_inbox.language))
        origin = request.headers.get("Origin", "")
        if origin not in self.web_inbox.allowed_origins:
            raise ApplicationError(
                _("This site may not use this widget (its origin is not allowed)."),
                code="origin_not_allowed",
                status_code=403,
            )
        self.origin = origin

    def visitor(self, request: Request) -> Visitor:
        visitor = services.visitor_from_token(
            web_inbox=self.web_inbox, token=request.headers.get(VISITOR_HEADER, "")
        )
        rate_check(f"widget:visitor:{visitor.uuid.hex}", "WIDGET_VISITOR_RATE")
        return visitor

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        response = Response(status=status.HTTP_204_NO_CONTENT)
        response["Access-Control-Allow-Methods"] = f"{self.methods}, OPTIONS"
        response["Access-Control-Allow-Headers"] = f"Content-Type, {VISITOR_HEADER}"
        response["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
        return response

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.origin:
            # Only an allowed origin's page may read the answer; no cookies are involved.
            response["Access-Control-Allow-Origin"] = self.origin
            patch_vary_headers(response, ("Origin", "Accept-Language"))
            response["Content-Language"] = translation.get_language()
        return response


def _config(web_inbox: WebInbox) -> dict[str, Any]:
    now = timezone.now()
    return {
        "name": web_inbox.name,
        "greeting": web_inbox.greeting,
        # The admin's words as written; without any, ours in the visitor's language.
        "away_message": web_inbox.away_message
        or _("We're away: leave a message and we'll get back to you."),
        "language": web_inbox.language,
        "online": inboxes.web_inbox_online(web_inbox=web_inbox, now=now),
        "prechat": {
            "name": web_inbox.prechat_name,
            "email": web_inbox.prechat_email,
            "phone": web_inbox.prechat_phone,
        },
    }


# The visitor API's answers: docs/widget.md, and in the schema the Widget* serializers
# of widget/representations.py (tests/widget/test_schema.py checks real answers on them).
_VISITOR = "Widget visitor API (docs/widget.md): inbox token + Origin + visitor token."


class ConfigView(WidgetView):
    methods = "GET"

    @extend_schema(
        responses=WidgetConfigSerializer,
        summary="The inbox's public settings",
        description=_VISITOR,
    )
    def get(self, request: Request, token: str) -> Response:
        return Response(_config(self.web_inbox))


class StringsView(WidgetView):
    methods = "GET"

    @extend_schema(
        responses=inline_serializer(
            "WidgetStrings",
            {
                "language": serializers.CharField(),
                "strings": serializers.DictField(
                    help_text="msgid -> translation (a plural: the list of its forms)."
                ),
            },
        ),
        summary="The widget's texts in the visitor's language",
        description=_VISITOR,
    )
    def get(self, request: Request, token: str) -> Response:
        language = translation.get_language()
        strings, version = catalog_strings(request._request, language)
        etag = f'"{version}"'
        if etag in request.headers.get("If-None-Match", ""):
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = Response({"language": language, "strings": strings})
        response["ETag"] = etag
        # A few minutes in the browser (one request per page load at most, then a 304);
        # the inbox's default language, changed, reaches visitors within that time.
        patch_cache_control(response, private=True, max_age=300)
        return response


class StartView(WidgetView):
    @extend_schema(
        request=StartSerializer,
        responses={200: WidgetStartSerializer, 201: WidgetStartSerializer},
        summary="Start or resume the visitor's conversation",
        description=_VISITOR,
    )
    def post(self, request: Request, token: str) -> Response:
        body = StartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # Read before the history: the socket resumes from here, so nothing written in
        # between is missed (a message in both is the same uuid: the widget keeps one).
        last_event_id = services.current_event_id(self.web_inbox.organization_id)
        started = services.visitor_start(
            web_inbox=self.web_inbox,
            token=data.get("token", ""),
            user_id=data.get("user_id", ""),
            user_hash=data.get("user_hash", ""),
            contact={k: data.get(k, "") for k in ("name", "email", "phone")},
            # Only what this page load says: a start without a page keeps the last one.
            context={
                k: v
                for k, v in (
                    ("page_url", data.get("page_url")),
                    ("user_agent", request.headers.get("User-Agent", "")[:500]),
                    ("utc_offset", data.get("utc_offset")),
                )
                if v not in (None, "")
            },
        )
        visitor = started.visitor
        rate_check(f"widget:visitor:{visitor.uuid.hex}", "WIDGET_VISITOR_RATE")
        desk = services.visitor_help_desk(visitor=visitor)
        history = selectors.visitor_history(visitor=visitor)
        return Response(
            {
                "visitor_token": started.token,
                "visitor": str(visitor.uuid),
                "verified": bool(visitor.user_id),
                "contact": {
                    "name": visitor.client.name,
                    "email": visitor.client.email,
                    "phone": visitor.client.phone or visitor.phone,
                },
                "conversation": visitor_conversation(HelpDeskSerializer(desk).data)
                if desk
                else None,
                "messages": [visitor_message(MessageSerializer(m).data) for m in history],
                "seen": visitor_seen_message(help_desk=desk) if desk else None,
                "last_event_id": last_event_id,
                "config": _config(self.web_inbox),
            },
            status=status.HTTP_201_CREATED if started.created else status.HTTP_200_OK,
        )


class MessageView(WidgetView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request=SendSerializer,
        responses={201: WidgetMessageSerializer},
        summary="The visitor sends a message",
        description=_VISITOR,
    )
    def post(self, request: Request, token: str) -> Response:
        visitor = self.visitor(request)
        body = SendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = services.visitor_message_send(
            visitor=visitor, text=body.validated_data["text"], file=body.validated_data.get("file")
        )
        return Response(
            visitor_message(MessageSerializer(message).data), status=status.HTTP_201_CREATED
        )


class TypingView(WidgetView):
    @extend_schema(request=None, responses={204: None}, summary="The visitor is typing")
    def post(self, request: Request, token: str) -> Response:
        services.visitor_typing(visitor=self.visitor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadView(WidgetView):
    @extend_schema(
        request=None,
        responses=WidgetReadSerializer,
        summary="The visitor read the agents' messages",
    )
    def post(self, request: Request, token: str) -> Response:
        count = services.visitor_read(visitor=self.visitor(request))
        return Response({"read": count})


class RatingView(WidgetView):
    @extend_schema(
        request=RatingWriteSerializer,
        responses={201: WidgetRatingSerializer},
        summary="The visitor rates the resolved conversation",
    )
    def post(self, request: Request, token: str) -> Response:
        visitor = self.visitor(request)
        body = RatingWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rating = services.rating_create(visitor=visitor, **body.validated_data)
        return Response(
            {"score": rating.score, "comment": rating.comment}, status=status.HTTP_201_CREATED
        )
