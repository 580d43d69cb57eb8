"""Who is who, for the console's pickers and settings (issue 13): an organization's
members and the caller's own preferences (language, time zone, attention). Teams are
listed by escalation's `/api/teams/` (id, slug, name, members), which the console's team
picker reads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import permissions, scopes
from core.api import ListView
from core.i18n import viewer_time_zone
from core.models import AgentPreference, Membership, Organization
from core.preferences import agent_preference_get, agent_preference_update
from core.scope import organization_get_for_principal


class MemberSerializer(serializers.ModelSerializer[Membership]):
    id = serializers.IntegerField(source="user.pk", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["id", "username", "name", "role", "is_available"]

    def get_name(self, membership: Membership) -> str:
        return str(membership.user.get_full_name() or membership.user.username)


class PreferenceSerializer(serializers.ModelSerializer[AgentPreference]):
    language = serializers.ChoiceField(
        choices=[("", "the browser's"), *settings.LANGUAGES],
        required=False,
        allow_blank=True,
        help_text="Blank: follow the browser (Accept-Language).",
    )

    time_zone = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="An IANA time zone (Europe/Moscow). Blank: the browser's.",
    )

    class Meta:
        model = AgentPreference
        fields = ["language", "time_zone", "notify_desktop", "notify_sound"]

    def validate_time_zone(self, value: str) -> str:
        if value and viewer_time_zone(value) is None:
            raise serializers.ValidationError(
                gettext("Unknown time zone: use an IANA name such as Europe/Moscow.")
            )
        return value


class MemberListView(ListView):
    """`GET /api/organizations/<slug>/members/`: agents only (people's names are not for
    an integration key); another tenant's organization is a 404."""

    required_scopes = {"GET": scopes.READ}
    permission_classes = permissions.with_default(permissions.IsAgent)
    serializer_class = MemberSerializer
    ordering = ("id",)

    def list_queryset(self, organization: Organization | None) -> QuerySet[Membership]:
        organization = organization_get_for_principal(
            principal=self.request.user, slug=self.kwargs["slug"]
        )
        return Membership.objects.filter(organization=organization).select_related("user")

    @extend_schema(summary="Members of an organization (the assignment picker)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class PreferenceView(APIView):
    """`GET/PATCH /api/me/preferences/`: the caller's own; persons only."""

    required_scopes = {"GET": scopes.READ, "PATCH": scopes.AGENT}
    permission_classes = permissions.with_default(permissions.IsAgent)

    @extend_schema(responses=PreferenceSerializer)
    def get(self, request: Request) -> Response:
        return Response(PreferenceSerializer(agent_preference_get(user=request.user)).data)

    @extend_schema(request=PreferenceSerializer, responses=PreferenceSerializer)
    def patch(self, request: Request) -> Response:
        body = PreferenceSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        preference = agent_preference_update(user=request.user, data=body.validated_data)
        return Response(PreferenceSerializer(preference).data)
