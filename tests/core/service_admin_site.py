"""A test-only admin site (urls for `pytest.mark.urls`) holding a ServiceAdmin for teams
whose services record each call and one on-commit effect, and refuse on demand."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.urls import path

from core.errors import ApplicationError
from core.models import Organization, Team, TeamMember
from core.service_admin import ServiceAdmin, ServiceInline

CALLS: list[tuple[Any, ...]] = []
EFFECTS: list[tuple[str, Any]] = []  # appended after commit only


def _effect(kind: str, value: Any) -> None:
    transaction.on_commit(lambda: EFFECTS.append((kind, value)))


def team_create(*, organization: Any, slug: str, name: str) -> Team:
    CALLS.append(("create", slug))
    if slug == "refused":
        raise ApplicationError("Refused.", fields={"slug": ["Not this slug."], "other": ["X."]})
    team = Team.objects.create(organization=organization, slug=slug, name=name.upper())
    _effect("created", slug)
    return team


def team_update(*, team: Team, data: dict[str, Any]) -> Team:
    CALLS.append(("update", dict(data)))
    Team.objects.filter(pk=team.pk).update(**data)
    if data.get("name") == "refused":
        raise ApplicationError("Not renamed.")  # after a write: it must roll back
    _effect("updated", team.slug)
    return team


def team_delete(*, team: Team) -> None:
    CALLS.append(("delete", team.slug))
    if team.slug.startswith("keep"):
        raise ApplicationError("This team stays.")
    _effect("deleted", team.slug)
    team.delete()


def member_add(*, team: Team, membership: Any, order: int) -> TeamMember:
    CALLS.append(("member_add", membership.pk))
    if order == 99:
        raise ApplicationError("Bad order.", fields={"order": ["Not 99."]})
    return TeamMember.objects.create(team=team, membership=membership, order=order)


def member_update(*, team_member: TeamMember, data: dict[str, Any]) -> TeamMember:
    CALLS.append(("member_update", dict(data)))
    TeamMember.objects.filter(pk=team_member.pk).update(**data)
    return team_member


def member_remove(*, team_member: TeamMember) -> None:
    CALLS.append(("member_remove", team_member.pk))
    team_member.delete()


class MemberInline(ServiceInline):
    model = TeamMember
    raw_id_fields = ["membership"]
    service_create = member_add
    service_update = member_update
    service_delete = member_remove


class TeamAdmin(ServiceAdmin):
    fields = ["organization", "slug", "name"]
    inlines = [MemberInline]
    actions = ["rename"]
    service_create = team_create
    service_update = team_update
    service_delete = team_delete

    @admin.action(description="Rename through the service")
    def rename(self, request: Any, queryset: Any) -> None:
        for team in queryset.order_by("slug"):
            name = "refused" if team.slug == "b" else "renamed"
            team_update(team=team, data={"name": name})
        self.message_user(request, "Renamed.", messages.SUCCESS)


class UpdateOnlyTeamAdmin(ServiceAdmin):
    service_update = team_update


def organization_update(*, organization: Organization, data: dict[str, Any], teams: Any) -> Any:
    """Replaces the organization's teams with `teams` (slug, name) in one call."""
    CALLS.append(("organization_update", dict(data), teams))
    if any(slug == "refused" for slug, _ in teams):
        raise ApplicationError("No such team.", fields={"teams": ["refused is not allowed."]})
    Organization.objects.filter(pk=organization.pk).update(**data)
    Team.objects.filter(organization=organization).delete()
    for slug, name in teams:
        Team.objects.create(organization=organization, slug=slug, name=name)
    return organization


class TeamsInline(ServiceInline):
    model = Team
    fields = ["slug", "name"]
    saved_by_parent = True


class OrganizationAdmin(ServiceAdmin):
    """Its teams are written by its own update service (like a rule and its levels)."""

    fields = ["name"]
    inlines = [TeamsInline]
    service_update = organization_update

    def service_update_kwargs(self, request: Any, obj: Any, form: Any, formsets: Any) -> Any:
        kwargs = super().service_update_kwargs(request, obj, form, formsets)
        (teams,) = formsets
        rows = [f.cleaned_data for f in teams.forms if f.has_changed() or f.instance.pk]
        kept = [r for r in rows if r and not r.get("DELETE")]
        return kwargs | {"teams": [(r["slug"], r["name"]) for r in kept]}


site = admin.AdminSite(name="services")
site.register(Organization, OrganizationAdmin)
site.register(Team, TeamAdmin)
site.register(TeamMember, UpdateOnlyTeamAdmin)  # (only its permissions are used)

urlpatterns = [path("admin/", admin.site.urls), path("services/", site.urls)]
