"""DRF's and drf-spectacular's settings: the API's policy classes, in one place.

Fixed (nothing here depends on the environment), so kept out of core/settings.py, which
imports them by name."""

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # ScopePermission: an API key needs the scope the view declares for the method;
    # a view that declares none is refused to keys (fail closed). core/permissions.py.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "core.permissions.ScopePermission",
    ],
    # Per API key / session user / client address, shared by all processes (rates above).
    "DEFAULT_THROTTLE_CLASSES": ["core.throttles.PrincipalRateThrottle"],
    # drf-spectacular's AutoSchema, plus each operation's API key scope (core/schema.py).
    "DEFAULT_SCHEMA_CLASS": "core.schema.ScopedAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    # JSON nested deeper than JSON_MAX_DEPTH is a 400 (core/bounded_input.py).
    "DEFAULT_PARSER_CLASSES": [
        "core.bounded_input.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.LinkHeaderCursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Customer communication platform API",
    "DESCRIPTION": "Chat, mailing, assistance and escalation. Websocket: /ws/chat/<org>/.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from drf-spectacular-sidecar's static files: no third-party script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`; name each choice set instead of a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "HelpDeskStatusEnum": "chat.models.HelpDesk.Status",
        "MessageStatusEnum": "chat.models.Message.Status",
        "MailingStatusEnum": "mailing.models.Mailing.Status",
        "IncidentStatusEnum": "escalation.models.Incident.Status",
        "AssistanceStatusEnum": "chat.models.AssistanceRequest.Status",
        "IncidentStepKindEnum": "escalation.models.IncidentStep.Kind",
        "MailingKindEnum": "mailing.models.Mailing.Kind",
        "TransportEnum": "mailing.models.Transport",
        "PrechatFieldEnum": "widget.models.WebInbox.Field",
        "AlertStatusEnum": [("firing", "firing"), ("resolved", "resolved")],
    },
}
