"""Escalation admin: every write goes through the services, like the API
(`core.service_admin.ServiceAdmin`). A team is saved by `team_save` (members from its
inline), a rule by `rule_save` / `rule_delete` (levels from its inline; the services
invalidate the ingestion's rule cache), an incident moves only by the Acknowledge /
Resolve actions (`incident_acknowledge` / `incident_resolve`: row lock, fencing token,
events). Forms check what the API's serializer checks, so a refusal lands on its field;
team pickers offer only the parent's organization's rows (and a forged id is refused).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.translation import gettext, gettext_lazy, ngettext

from core.errors import ApplicationError
from core.models import Team, TeamMember
from core.service_admin import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    ServiceAdmin,
    ServiceInline,
    add_service_errors,
)
from escalation.incidents import incident_acknowledge, incident_resolve
from escalation.models import (
    Incident,
    IncidentNotification,
    IncidentStep,
    Rule,
    RuleLevel,
    TriggerBatch,
)
from escalation.rules import (
    normalize_triggers,
    rule_check,
    rule_delete,
    rule_levels_check,
    rule_save,
    team_delete,
    team_save,
)
from escalation.serializers import RuleWriteSerializer


def _messages(exc: ApplicationError) -> list[str]:
    if exc.fields:
        return [str(m) for msgs in exc.fields.values() for m in msgs]
    return [exc.message]


def _rows(formsets: list[Any], model: type[Any]) -> list[dict[str, Any]]:
    """The cleaned rows of the inline of `model` that stay (not deleted, not blank)."""
    return [
        f.cleaned_data
        for formset in formsets
        if formset.model is model
        for f in formset.forms
        if getattr(f, "cleaned_data", None) and not f.cleaned_data.get("DELETE")
    ]


# --- teams -----------------------------------------------------------------------------


class OrganizationScopedFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """An inline whose `scoped_field` offers only rows of the parent's organization (a raw
    id of another one is refused: the field's queryset is what the form validates against)."""

    scoped_field = ""

    def add_fields(self, form: forms.ModelForm, index: Any) -> None:  # type: ignore[type-arg]
        super().add_fields(form, index)
        organization_id = getattr(self.instance, "organization_id", None)
        if organization_id and self.scoped_field in form.fields:
            field = form.fields[self.scoped_field]
            field.queryset = field.queryset.filter(  # type: ignore[attr-defined]
                organization_id=organization_id
            )


class TeamMemberFormSet(OrganizationScopedFormSet):
    """Only memberships of the team's organization."""

    scoped_field = "membership"

    def clean(self) -> None:
        super().clean()
        organization_id = getattr(self.instance, "organization_id", None)
        for form in self.forms:
            membership = getattr(form, "cleaned_data", {}).get("membership")
            if membership is not None and membership.organization_id != organization_id:
                raise ValidationError(gettext("A member must belong to the team's organization."))


class TeamMemberInline(ServiceInline):
    """Saved by `team_save` with the team (members in `order`)."""

    model = TeamMember
    formset = TeamMemberFormSet
    raw_id_fields = ["membership"]
    saved_by_parent = True


# Teams live in core (assistance topics and escalation levels both use them); they
# are registered here, with the escalation services that write them.
@admin.register(Team)
class TeamAdmin(ServiceAdmin):
    list_display = ["slug", "name", "organization"]
    list_filter = ["organization"]
    search_fields = ["slug", "name"]
    inlines = [TeamMemberInline]
    service_create = team_save
    service_update = team_save
    service_delete = team_delete

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # team_save keeps a team in its organization (its members are memberships there).
        return ["organization"] if obj is not None else []

    def _fields(self, form: Any, formsets: list[Any]) -> dict[str, Any]:
        members = sorted(_rows(formsets, TeamMember), key=lambda row: row.get("order") or 0)
        return {
            "slug": form.cleaned_data["slug"],
            "name": form.cleaned_data.get("name", ""),
            "members": [row["membership"].user.username for row in members],
        }

    def service_create_kwargs(self, request: HttpRequest, form: Any, formsets: Any) -> Any:
        return {"organization": form.cleaned_data["organization"], **self._fields(form, formsets)}

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: Any, formsets: Any
    ) -> Any:
        return {"organization": obj.organization, "team": obj, **self._fields(form, formsets)}


@admin.register(TeamMember)
class TeamMemberAdmin(ReadOnlyAdmin):
    """Listing only: members are edited on their team (validated there)."""

    list_display = ["team", "membership", "order"]
    list_filter = ["team__organization"]
    list_select_related = ["team", "membership__user", "membership__organization"]


# --- rules -----------------------------------------------------------------------------


class RuleForm(forms.ModelForm):  # type: ignore[type-arg]
    """Validated and normalized like `POST /api/escalation/rules/` (the same serializer
    and service checks): a malformed rule would break every trigger POST of its org."""

    class Meta:
        model = Rule
        fields = [
            "organization",
            "code",
            "name",
            "is_active",
            "triggers",
            "warn_after",
            "warn_tags",
            "warn_message",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        organization = data.get("organization")
        if organization is None or self.errors:
            return data
        body = RuleWriteSerializer(
            data={
                "code": data.get("code", ""),
                "name": data.get("name", ""),
                "is_active": data.get("is_active", True),
                "triggers": data.get("triggers"),
                "warn_after": data.get("warn_after"),
                "warn_tags": data.get("warn_tags") or [],
                "warn_message": data.get("warn_message", ""),
            }
        )
        if not body.is_valid():
            for field, errors in body.errors.items():
                target = field if field in self.fields else None
                self.add_error(target, ValidationError(_flatten(errors)))
            return data
        valid = body.validated_data
        try:
            rule_check(
                organization=organization,
                code=valid["code"],
                warn_after=valid.get("warn_after"),
                warn_message=valid.get("warn_message", ""),
                rule=self.instance,
            )
        except ApplicationError as exc:
            add_service_errors(self, exc)
            return data
        data["triggers"] = normalize_triggers(valid["triggers"])
        data["warn_tags"] = list(valid.get("warn_tags", []))
        return data


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [
            m
            for k, v in errors.items()
            for m in _flatten(v, prefix if k == "non_field_errors" else f"{prefix}{k}: ")
        ]
    if isinstance(errors, list):
        return [m for i, v in enumerate(errors) for m in _flatten(v, prefix)]
    return [f"{prefix}{errors}"]


class RuleLevelFormSet(OrganizationScopedFormSet):
    scoped_field = "team"

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or getattr(self.instance, "organization_id", None) is None:
            return
        levels = [
            {
                "level": f.cleaned_data["level"],
                "after_occurrences": f.cleaned_data.get("after_occurrences"),
                "after_minutes": f.cleaned_data.get("after_minutes"),
                "team": f.cleaned_data.get("team"),
            }
            for f in self.forms
            if getattr(f, "cleaned_data", None) and not f.cleaned_data.get("DELETE")
        ]
        for lv in levels:
            if lv["after_occurrences"] is not None and lv["after_occurrences"] < 1:
                raise ValidationError(
                    gettext("Level %(level)s: after_occurrences is at least 1.")
                    % {"level": lv["level"]}
                )
        try:
            rule_levels_check(organization=self.instance.organization, levels=levels)
        except ApplicationError as exc:
            raise ValidationError(_messages(exc)) from exc


class RuleLevelInline(ServiceInline):
    """Saved by `rule_save` with the rule (it replaces the levels)."""

    model = RuleLevel
    formset = RuleLevelFormSet
    saved_by_parent = True


@admin.register(Rule)
class RuleAdmin(ServiceAdmin):
    form = RuleForm
    list_display = ["code", "name", "organization", "is_active", "warn_after", "updated_at"]
    list_filter = ["organization", "is_active"]
    search_fields = ["code", "name"]
    inlines = [RuleLevelInline]
    service_create = rule_save
    service_update = rule_save
    service_delete = rule_delete

    def _fields(self, form: Any, formsets: list[Any]) -> dict[str, Any]:
        """`rule_save` replaces the whole rule: every field and every level."""
        data = form.cleaned_data
        return {
            "organization": data["organization"],
            "code": data["code"],
            "name": data.get("name", ""),
            "is_active": data.get("is_active", True),
            "triggers": data["triggers"],
            "warn_after": data.get("warn_after"),
            "warn_tags": data.get("warn_tags") or [],
            "warn_message": data.get("warn_message", ""),
            "levels": [
                {k: row.get(k) for k in ("level", "after_occurrences", "after_minutes", "team")}
                for row in _rows(formsets, RuleLevel)
            ],
        }

    def service_create_kwargs(self, request: HttpRequest, form: Any, formsets: Any) -> Any:
        return self._fields(form, formsets)

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: Any, formsets: Any
    ) -> Any:
        return {"rule": obj, **self._fields(form, formsets)}


@admin.register(RuleLevel)
class RuleLevelAdmin(ReadOnlyAdmin):
    """Listing only: levels are edited on their rule, where they are validated."""

    list_display = ["rule", "level", "after_occurrences", "after_minutes", "team"]
    list_filter = ["rule__organization"]
    list_select_related = ["rule", "team"]


# --- incidents -------------------------------------------------------------------------

STEP_FIELDS: Any = [
    "kind",
    "level",
    "reason",
    "occurrences",
    "elapsed_seconds",
    "team",
    "mailing_id",
    "error",
    "fired_at",
]


class IncidentStepInline(ReadOnlyInline):
    model = IncidentStep
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS


@admin.register(Incident)
class IncidentAdmin(ServiceAdmin):
    """No form writes an incident (no service declared: the page is view-only); status,
    level, occurrences and warnings move only through the services (row lock, fencing
    token, events), here the two actions, run in one transaction by ServiceAdmin."""

    list_display = [
        "uuid",
        "organization",
        "rule",
        "status",
        "occurrences",
        "level",
        "opened_at",
        "next_check_at",
    ]
    list_filter = ["organization", "status"]
    list_select_related = ["organization", "rule"]
    search_fields = ["=uuid"]
    inlines = [IncidentStepInline]
    actions = ["acknowledge", "resolve"]

    def has_transition_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("escalation.change_incident"))

    def _apply(self, request: HttpRequest, queryset: QuerySet[Incident], verb: str) -> None:
        done, refused = 0, []
        for incident in queryset:
            try:
                if verb == "acknowledge":
                    incident_acknowledge(incident=incident, user=request.user)
                else:
                    incident_resolve(incident=incident, user=request.user, reason="admin")
                done += 1
            except ApplicationError as exc:
                refused.append(f"{incident.uuid}: {exc.message}")
        if done:
            text = (
                ngettext(
                    "Acknowledged %(count)d incident.", "Acknowledged %(count)d incidents.", done
                )
                if verb == "acknowledge"
                else ngettext("Resolved %(count)d incident.", "Resolved %(count)d incidents.", done)
            )
            self.message_user(request, text % {"count": done}, messages.SUCCESS)
        if refused:
            self.message_user(
                request, gettext("Not changed: ") + "; ".join(refused), messages.WARNING
            )

    @admin.action(
        description=gettext_lazy("Acknowledge (stops escalation)"), permissions=["transition"]
    )
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._apply(request, queryset, "acknowledge")

    @admin.action(description=gettext_lazy("Resolve"), permissions=["transition"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._apply(request, queryset, "resolve")


@admin.register(IncidentStep)
class IncidentStepAdmin(ReadOnlyAdmin):
    list_display = ["incident", "kind", "level", "reason", "occurrences", "team", "fired_at"]
    list_filter = ["kind", "incident__organization"]
    list_select_related = ["incident", "team"]


@admin.register(IncidentNotification)
class IncidentNotificationAdmin(ReadOnlyAdmin):
    list_display = ["step", "username", "channel", "status", "attempts", "sent_at", "error"]
    list_filter = ["status", "channel"]
    search_fields = ["username", "address"]
    list_select_related = ["step"]


@admin.register(TriggerBatch)
class TriggerBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "source", "kind", "received_at", "evaluated_at"]
    list_filter = ["source", "kind", "organization"]
