"""Escalation admin. State changes go through the services (events, fencing): an
incident's state is read-only here and moves only by the Acknowledge / Resolve
actions; a rule is validated like the API's; team pickers offer only the parent's
organization's rows (and a forged id is refused)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from core.errors import ApplicationError
from core.models import Team, TeamMember
from escalation import incidents, rules
from escalation.models import (
    Incident,
    IncidentNotification,
    IncidentStep,
    Rule,
    RuleLevel,
    TriggerBatch,
)
from escalation.serializers import RuleWriteSerializer


def _messages(exc: ApplicationError) -> list[str]:
    if exc.fields:
        return [str(m) for msgs in exc.fields.values() for m in msgs]
    return [exc.message]


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
                raise ValidationError("A member must belong to the team's organization.")


class TeamMemberInline(admin.TabularInline):
    model = TeamMember
    formset = TeamMemberFormSet
    extra = 0
    raw_id_fields = ["membership"]


# Teams live in core (assistance topics and escalation levels both use them); they
# are registered here so core/admin.py stays untouched.
@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "organization"]
    list_filter = ["organization"]
    search_fields = ["slug", "name"]
    inlines = [TeamMemberInline]


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
            rules.rule_check(
                organization=organization,
                code=valid["code"],
                warn_after=valid.get("warn_after"),
                warn_message=valid.get("warn_message", ""),
                rule=self.instance,
            )
        except ApplicationError as exc:
            raise ValidationError(_messages(exc)) from exc
        data["triggers"] = rules.normalize_triggers(valid["triggers"])
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
                raise ValidationError(f"Level {lv['level']}: after_occurrences is at least 1.")
        try:
            rules.rule_levels_check(organization=self.instance.organization, levels=levels)
        except ApplicationError as exc:
            raise ValidationError(_messages(exc)) from exc


class RuleLevelInline(admin.TabularInline):
    model = RuleLevel
    formset = RuleLevelFormSet
    extra = 0


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["code", "name", "organization", "is_active", "warn_after", "updated_at"]
    list_filter = ["organization", "is_active"]
    search_fields = ["code", "name"]
    inlines = [RuleLevelInline]

    # Ingestion caches each organization's rules: an edit here must invalidate it.
    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        super().save_related(request, form, formsets, change)
        rules.rules_changed_on_commit(form.instance.organization_id)
        if form.initial.get("organization") not in (None, form.instance.organization_id):
            rules.rules_changed_on_commit(form.initial["organization"])  # moved away from it

    def delete_model(self, request, obj):  # type: ignore[no-untyped-def]
        rules.rules_changed_on_commit(obj.organization_id)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        for organization_id in set(queryset.values_list("organization_id", flat=True)):
            rules.rules_changed_on_commit(organization_id)
        super().delete_queryset(request, queryset)


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


class IncidentStepInline(admin.TabularInline):
    model = IncidentStep
    extra = 0
    can_delete = False
    fields = STEP_FIELDS
    readonly_fields = STEP_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Read-only: status, level, occurrences and warnings move only through the
    services (row lock, fencing token, events), here the two actions."""

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
                    incidents.incident_acknowledge(incident=incident, user=request.user)
                else:
                    incidents.incident_resolve(incident=incident, user=request.user, reason="admin")
                done += 1
            except ApplicationError as exc:
                refused.append(f"{incident.uuid}: {exc.message}")
        if done:
            self.message_user(request, f"{verb.title()}d {done} incident(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Acknowledge (stops escalation)", permissions=["transition"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._apply(request, queryset, "acknowledge")

    @admin.action(description="Resolve", permissions=["transition"])
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
