from __future__ import annotations

from django.contrib import admin

from core.models import Team, TeamMember
from escalation.ingestion import rules_changed_on_commit
from escalation.models import Incident, IncidentStep, Rule, RuleLevel, TriggerBatch


class TeamMemberInline(admin.TabularInline):
    model = TeamMember
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


class RuleLevelInline(admin.TabularInline):
    model = RuleLevel
    extra = 0


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "organization", "is_active", "warn_after", "updated_at"]
    list_filter = ["organization", "is_active"]
    search_fields = ["code", "name"]
    inlines = [RuleLevelInline]

    # Ingestion caches each organization's rules: an edit here must invalidate it.
    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        super().save_related(request, form, formsets, change)
        rules_changed_on_commit(form.instance.organization_id)

    def delete_model(self, request, obj):  # type: ignore[no-untyped-def]
        rules_changed_on_commit(obj.organization_id)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        for organization_id in set(queryset.values_list("organization_id", flat=True)):
            rules_changed_on_commit(organization_id)
        super().delete_queryset(request, queryset)


class IncidentStepInline(admin.TabularInline):
    model = IncidentStep
    extra = 0
    can_delete = False
    readonly_fields = [
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


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
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
    search_fields = ["=uuid"]
    raw_id_fields = ["rule", "acknowledged_by", "resolved_by"]
    readonly_fields = ["rule_snapshot", "active_job_id"]
    inlines = [IncidentStepInline]


@admin.register(TriggerBatch)
class TriggerBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "organization", "source", "kind", "received_at", "evaluated_at"]
    list_filter = ["source", "kind", "organization"]
    readonly_fields = ["triggers", "matched_rules", "unmatched"]
