"""Admin for templates and mailings: writes go through the services (scheduling, checks),
by core.service_admin.ServiceAdmin; messages are read-only (dispatch writes them)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, gettext_lazy, ngettext

from core.errors import ApplicationError
from core.service_admin import ReadOnlyAdmin, ServiceAdmin, ServiceInline, add_service_errors
from mailing import services
from mailing.models import (
    Event,
    EventRule,
    Mailing,
    MailingMessage,
    MailingSkip,
    Template,
    TemplateVariant,
)
from mailing.selectors import mailing_counts
from mailing.services import MAILING_VALUES
from mailing.services.variants import template_variant_delete, template_variant_save


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = [
            "organization",
            "title",
            "code",
            "transport",
            "subject",
            "body",
            "html_body",
            "variables",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        candidate = Template(
            **{f: data.get(f, getattr(self.instance, f, None)) for f in self.Meta.fields}
        )
        if candidate.variables is None:
            candidate.variables = []
        try:
            services.template_validate(template=candidate)
        except ApplicationError as exc:
            add_service_errors(self, exc)
        return data


class TemplateVariantInline(ServiceInline):
    """The template in other languages (issue 16), one row per language, saved by the
    variant services (an existing row's language is fixed: delete it and add another)."""

    model = TemplateVariant
    fields = ["language", "subject", "body", "html_body"]
    service_create = template_variant_save
    service_update = template_variant_save
    service_delete = template_variant_delete
    service_object_arg = "variant"

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: Any, formsets: list[Any]
    ) -> dict[str, Any]:
        data = form.cleaned_data
        if "language" in form.changed_data:
            message = gettext("A text's language does not change: delete it and add another.")
            raise ApplicationError(message, fields={"language": [message]})
        fields = {f: data.get(f, getattr(obj, f)) for f in ("body", "subject", "html_body")}
        return {"template": obj.template, "language": obj.language, **fields}


@admin.register(Template)
class TemplateAdmin(ServiceAdmin):
    form = TemplateForm
    inlines = [TemplateVariantInline]
    list_display = ["title", "code", "transport", "organization", "updated_at"]
    list_filter = ["organization", "transport"]
    search_fields = ["title", "code", "body"]
    service_create = services.template_create
    service_update = services.template_update
    service_delete = services.template_delete

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        # Texts in other languages once the template exists (its checks apply to them).
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # template_update keeps the organization: a template does not move.
        return ["organization"] if obj is not None else []

    def service_create_kwargs(self, request: HttpRequest, form: Any, formsets: Any) -> Any:
        kwargs = super().service_create_kwargs(request, form, formsets)
        kwargs["variables"] = kwargs.get("variables") or []
        return kwargs


class MailingForm(forms.ModelForm):
    class Meta:
        model = Mailing
        fields = ["organization", "name", "kind", *MAILING_VALUES[:-1], "promo"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        organization = data.get("organization") or getattr(self.instance, "organization", None)
        if organization is None:
            return data
        values = {f: data.get(f, getattr(self.instance, f, None)) for f in MAILING_VALUES}
        for f, empty in (("context", {}), ("operator_codes", []), ("tags", []), ("client_ids", [])):
            if values[f] is None:
                values[f] = empty
        try:
            services.mailing_validate(
                organization=organization, values=values, creating=self.instance.pk is None
            )
        except ApplicationError as exc:
            add_service_errors(self, exc)
        return data


@admin.register(Mailing)
class MailingAdmin(ServiceAdmin):
    form = MailingForm
    list_display = [
        "id",
        "name",
        "organization",
        "kind",
        "status",
        "start_at",
        "end_at",
        "priority",
        "promo",
    ]
    list_filter = ["organization", "status", "kind", "promo"]
    search_fields = ["name", "text"]
    readonly_fields = [
        "status",
        "started_at",
        "materialized_at",
        "finished_at",
        "created_at",
        "counts",
    ]
    actions = ["cancel"]
    service_create = services.mailing_create
    service_update = services.mailing_update
    service_delete = services.mailing_delete

    @admin.display(description=gettext_lazy("messages by status"))
    def counts(self, obj: Mailing) -> str:
        if obj.pk is None:
            return "-"
        return ", ".join(f"{k}: {v}" for k, v in mailing_counts(mailing_id=obj.pk).items())

    def service_create_kwargs(self, request: HttpRequest, form: Any, formsets: Any) -> Any:
        # MailingForm's own fields: the admin's form class also lists the read-only ones.
        fields = {f: form.cleaned_data.get(f) for f in MailingForm.Meta.fields}
        for f, empty in (("context", {}), ("operator_codes", []), ("tags", []), ("client_ids", [])):
            fields[f] = fields.get(f) or empty
        return {**fields, "created_by": request.user}

    @admin.action(description=gettext_lazy("Cancel the selected mailings"))
    def cancel(self, request: HttpRequest, queryset: QuerySet[Mailing]) -> None:
        count = 0
        for mailing in queryset:
            services.mailing_cancel(mailing=mailing)
            count += 1
        text = ngettext("Cancelled %(count)d mailing.", "Cancelled %(count)d mailings.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)


@admin.register(MailingMessage)
class MailingMessageAdmin(ReadOnlyAdmin):
    """Read-only: messages are written by dispatch only (statuses move forward)."""

    list_display = ["delivery_id", "mailing", "client", "status", "created_at"]
    list_filter = ["mailing__organization", "delivery__status"]
    raw_id_fields = ["delivery", "mailing", "client"]
    search_fields = ["=delivery__id", "=mailing__id", "=client__id"]

    @admin.display(description=gettext_lazy("status"))
    def status(self, obj: MailingMessage) -> str:
        return str(obj.delivery.status)

    def get_queryset(self, request: HttpRequest) -> QuerySet[MailingMessage]:
        return super().get_queryset(request).select_related("delivery", "mailing", "client")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Read-only: events are written by `POST /api/events/` only (once per key)."""

    list_display = [
        "id",
        "organization",
        "name",
        "client",
        "idempotency_key",
        "duplicates",
        "created_at",
    ]
    list_filter = ["organization", "name"]
    raw_id_fields = ["client"]
    search_fields = ["=id", "idempotency_key", "=client__id"]
    readonly_fields = ["cancelled"]


@admin.register(EventRule)
class EventRuleAdmin(ReadOnlyAdmin):
    """Read-only here: rules are written through `/api/event-rules/` (admins)."""

    list_display = ["id", "organization", "event", "template", "delay_seconds", "active"]
    list_filter = ["organization", "event"]


@admin.register(MailingSkip)
class MailingSkipAdmin(ReadOnlyAdmin):
    """Clients a mailing skipped (no usable address, bounced, opted out): counted, read-only."""

    list_display = ["mailing", "client", "reason", "created_at"]
    list_filter = ["reason", "mailing__organization"]
    raw_id_fields = ["mailing", "client"]
