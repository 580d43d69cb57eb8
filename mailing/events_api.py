"""Event-driven notifications over HTTP: external services post events, admins keep the
rules (mailing/services/events.py says what a rule does)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import permissions, scopes
from core.api import ListView, slug_of
from core.errors import ApplicationError
from core.models import Organization
from core.scope import ORGANIZATION_PARAM, create_in_organization, organization_scope
from mailing import selectors
from mailing.serializers import (
    EventInSerializer,
    EventRuleSerializer,
    EventRuleUpdateSerializer,
    EventRuleWriteSerializer,
    EventSerializer,
)
from mailing.services.events import (
    event_receive,
    event_rule_create,
    event_rule_delete,
    event_rule_update,
)

# Rules send mail to every client an event names: configuration, for admins only.
ADMIN_WRITES = permissions.with_default(permissions.IsOrganizationAdmin)


class EventListView(ListView):
    """`POST`: an external service's event (an integration key with the `events` scope
    acts for its own organization). 201 when processed now, 200 with the same body when
    its idempotency key was seen before (nothing processed again)."""

    required_scopes = {"GET": scopes.READ, "POST": scopes.EVENTS}
    serializer_class = EventSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.event_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=EventInSerializer, responses={201: EventSerializer, 200: EventSerializer}
    )
    def post(self, request: Request) -> Response:
        body = EventInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = organization_scope(request, slug=data.get("organization"), required=True)
        event, created = event_receive(
            organization=organization,
            name=data["event"],
            client=data["client"],
            data=data["data"],
            idempotency_key=data["idempotency_key"],
        )
        event = selectors.event_list(principal=request.user).get(pk=event.pk)
        return Response(
            EventSerializer(event).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class EventRuleListView(ListView):
    required_scopes = {"GET": scopes.READ, "POST": scopes.ADMIN}
    permission_classes = ADMIN_WRITES
    serializer_class = EventRuleSerializer

    def list_queryset(self, organization: Organization | None) -> Any:
        return selectors.event_rule_list(
            principal=self.request.user, organization_slug=slug_of(organization)
        )

    @extend_schema(parameters=[ORGANIZATION_PARAM])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=EventRuleWriteSerializer, responses={201: EventRuleSerializer})
    def post(self, request: Request) -> Response:
        organization, data = create_in_organization(request, EventRuleWriteSerializer, view=self)
        data["template"] = _template_of(request, data["template"])
        rule = event_rule_create(organization=organization, **data)
        return Response(EventRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


def _template_of(request: Request, pk: int) -> Any:
    """The template a rule names, seen by the caller: another organization's is a field
    error, not a 404 of the rule."""
    try:
        return selectors.template_get_for_principal(principal=request.user, pk=pk)
    except ApplicationError as exc:
        raise ApplicationError(
            gettext("Unknown template."), fields={"template": [gettext("Template not found.")]}
        ) from exc


class EventRuleDetailView(APIView):
    required_scopes = {"GET": scopes.READ, "PATCH": scopes.ADMIN, "DELETE": scopes.ADMIN}
    permission_classes = ADMIN_WRITES

    @extend_schema(responses=EventRuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        rule = selectors.event_rule_get_for_principal(principal=request.user, pk=pk)
        return Response(EventRuleSerializer(rule).data)

    @extend_schema(request=EventRuleUpdateSerializer, responses=EventRuleSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        rule = selectors.event_rule_get_for_principal(principal=request.user, pk=pk)
        self.check_object_permissions(request, rule)
        body = EventRuleUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if "template" in data:
            data["template"] = _template_of(request, data["template"])
        rule = event_rule_update(rule=rule, data=data)
        return Response(EventRuleSerializer(rule).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        rule = selectors.event_rule_get_for_principal(principal=request.user, pk=pk)
        self.check_object_permissions(request, rule)
        event_rule_delete(rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)
