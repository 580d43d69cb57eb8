"""Admin for templates and mailings. Writes go through the services (scheduling, checks)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from core.admin import ReadOnlyAdmin
from core.errors import ApplicationError
from mailing import services
from mailing.models import Mailing, MailingMessage, Template
from mailing.selectors import mailing_counts

_MAILING_VALUES = (
    "start_at",
    "end_at",
    "text",
    "template",
    "context",
    "operator_codes",
    "tags",
    "client_ids",
    "priority",
    "window_start",
    "window_end",
    "kind",
)


def _add_errors(form: forms.ModelForm, exc: ApplicationError) -> None:
    for field, errors in (exc.fields or {"__all__": [exc.message]}).items():
        form.add_error(field if field in form.fields else None, errors)


def _describe(exc: ApplicationError) -> str:
    details = "; ".join(f"{f}: {' '.join(map(str, e))}" for f, e in (exc.fields or {}).items())
    return f"{exc.message} {details}".strip()


class ServiceAdmin(admin.ModelAdmin):
    """Writes go through the services; an ApplicationError they raise is shown as an
    admin error message on the page it came from (the transaction is rolled back)
    instead of a 500. The bulk delete goes through the service too."""

    def _refused(self, request: HttpRequest, exc: ApplicationError, to: str) -> HttpResponse:
        self.message_user(request, _describe(exc), messages.ERROR)
        return HttpResponseRedirect(to)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            return self._refused(request, exc, request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            return self._refused(request, exc, request.get_full_path().rsplit("delete/", 1)[0])

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletes rows without the service
        return actions

    def _service_delete(self, obj: Any) -> None:
        raise NotImplementedError

    @admin.action(description="Delete the selected %(verbose_name_plural)s")
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        deleted, refused = 0, []
        for obj in queryset:
            try:
                self._service_delete(obj)
                deleted += 1
            except ApplicationError as exc:
                refused.append(f"{obj}: {_describe(exc)}")
        if deleted:
            self.message_user(request, f"Deleted {deleted}.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, f"Not deleted: {line}", messages.ERROR)


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["organization", "title", "code", "body", "transport", "variables"]

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
            _add_errors(self, exc)
        return data


@admin.register(Template)
class TemplateAdmin(ServiceAdmin):
    form = TemplateForm
    list_display = ["title", "code", "transport", "organization", "updated_at"]
    list_filter = ["organization", "transport"]
    search_fields = ["title", "code", "body"]
    actions = ["delete_through_service"]

    def save_model(self, request: HttpRequest, obj: Template, form: Any, change: bool) -> None:
        fields = ("title", "code", "body", "transport", "variables")
        if change:
            data = {f: form.cleaned_data[f] for f in form.changed_data if f in fields}
            services.template_update(template=Template.objects.get(pk=obj.pk), data=data)
            obj.refresh_from_db()
            return
        data = form.cleaned_data
        template = services.template_create(
            organization=data["organization"],
            title=data["title"],
            code=data["code"],
            body=data["body"],
            transport=data["transport"],
            variables=data.get("variables") or [],
        )
        obj.pk = template.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Template) -> None:
        services.template_delete(template=obj)

    def _service_delete(self, obj: Template) -> None:
        services.template_delete(template=obj)


class MailingForm(forms.ModelForm):
    class Meta:
        model = Mailing
        fields = ["organization", "name", "kind", *_MAILING_VALUES[:-1], "promo"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        organization = data.get("organization") or getattr(self.instance, "organization", None)
        if organization is None:
            return data
        values = {f: data.get(f, getattr(self.instance, f, None)) for f in _MAILING_VALUES}
        for f, empty in (("context", {}), ("operator_codes", []), ("tags", []), ("client_ids", [])):
            if values[f] is None:
                values[f] = empty
        try:
            services.mailing_validate(
                organization=organization, values=values, creating=self.instance.pk is None
            )
        except ApplicationError as exc:
            _add_errors(self, exc)
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
    actions = ["cancel", "delete_through_service"]

    @admin.display(description="messages by status")
    def counts(self, obj: Mailing) -> str:
        if obj.pk is None:
            return "-"
        return ", ".join(f"{k}: {v}" for k, v in mailing_counts(mailing_id=obj.pk).items())

    def save_model(self, request: HttpRequest, obj: Mailing, form: Any, change: bool) -> None:
        data = {f: form.cleaned_data[f] for f in form.changed_data if f in form.cleaned_data}
        if change:
            services.mailing_update(mailing=obj, data=data)
            obj.refresh_from_db()
            return
        fields = {f: form.cleaned_data.get(f) for f in form.Meta.fields}
        fields.pop("kind", None)
        for f, empty in (("context", {}), ("operator_codes", []), ("tags", []), ("client_ids", [])):
            fields[f] = fields.get(f) or empty
        mailing = services.mailing_create(created_by=request.user, **fields)
        obj.pk = mailing.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Mailing) -> None:
        services.mailing_delete(mailing=obj)

    def _service_delete(self, obj: Mailing) -> None:
        services.mailing_delete(mailing=obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # A mailing's messages go with it (through the service); the read-only
        # message admin must not make deleting the mailing itself a 403.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(str(MailingMessage._meta.verbose_name))
        return deleted, counts, perms_needed, protected

    @admin.action(description="Cancel the selected mailings")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Mailing]) -> None:
        count = 0
        for mailing in queryset:
            services.mailing_cancel(mailing=mailing)
            count += 1
        self.message_user(request, f"Cancelled {count} mailing(s).", messages.SUCCESS)


@admin.register(MailingMessage)
class MailingMessageAdmin(ReadOnlyAdmin):
    """Read-only: messages are written by dispatch only (statuses move forward)."""

    list_display = ["delivery_id", "mailing", "client", "status", "created_at"]
    list_filter = ["mailing__organization", "delivery__status"]
    raw_id_fields = ["delivery", "mailing", "client"]
    search_fields = ["=delivery__id", "=mailing__id", "=client__id"]

    @admin.display(description="status")
    def status(self, obj: MailingMessage) -> str:
        return str(obj.delivery.status)

    def get_queryset(self, request: HttpRequest) -> QuerySet[MailingMessage]:
        return super().get_queryset(request).select_related("delivery", "mailing", "client")
