"""The admin writes through the services, like the API: `ServiceAdmin`.

Services are the only write path (rules checked, events published after commit, `Delivery`
rows created, caches invalidated); an admin saving rows itself would skip all of that.
So a model admin that writes declares its service functions:

    @admin.register(Client)
    class ClientAdmin(ServiceAdmin):
        service_create = client_create   # (**fields) -> the new row
        service_update = client_update   # (client=row, data={changed fields}) -> row
        service_delete = client_delete   # (client=row) -> None

1. **Arguments.** Create: the form's model fields by name (`service_create_kwargs`).
   Update: the row re-read from the database under `service_object_arg` (default: the
   model's name in snake_case, HelpDesk -> `help_desk`) and `data`, the model fields the
   form changed (`service_update_kwargs`); nothing changed, nothing called. Delete: the
   row (`service_delete_kwargs`). Override a hook when the service's signature differs
   (a username for a user); the create/update hooks also get the inline formsets, for a
   service that saves the children with the row. A service returns the row (or a tuple
   starting with it); the page then shows the row as the service left it.
2. **Permissions follow the declarations**: no `service_create`, no "add"; no
   `service_update`, view-only; no `service_delete`, no "delete". Rows only the system
   writes (deliveries, attempts, events) use `ReadOnlyAdmin`.
3. **Refusals are answers, never a 500.** An `ApplicationError` on the add/change page
   rolls the request back and renders the form again (200): its message at the top, each
   field error on its field (at the top if the form lacks the field). A refused delete is
   an error message on the row's page; a refused action is rolled back whole, with a
   message. "Delete selected" (Django's, with its confirmation page) deletes each row
   through `service_delete` in its own savepoint: the accepted rows go, each refusal is
   named. `add_service_errors` puts the same errors on a form from its own `clean()`.
4. **One transaction per request** (Django's for the add/change/delete views, ours for
   actions): the services' on-commit effects (`publish_on_commit`, `enqueue_on_commit`)
   fire once, after the request commits, never for a write that was rolled back.
5. **Inlines** are read-only (`ReadOnlyInline`) or a `ServiceInline`, whose rows go
   through its own three declarations (a new row gets the parent under the foreign key's
   name), or, with `saved_by_parent = True`, through the parent's service (hooks of 1).
   An inline that would write rows by itself is a configuration error. Many-to-many
   values go to the services with the other fields; the admin never saves relations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from inspect import isfunction
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import model_ngettext, quote
from django.core.exceptions import ImproperlyConfigured
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from core.errors import ApplicationError

Service = Callable[..., Any]
_DECLARATIONS = ("service_create", "service_update", "service_delete")
# Where changeform_view leaves a refusal for the form it renders again.
_REFUSAL = "service_admin_refusal"


def describe(exc: ApplicationError) -> str:
    """One line: the message and each field's errors."""
    details = "; ".join(f"{f}: {' '.join(map(str, e))}" for f, e in exc.fields.items())
    return f"{exc.message} {details}".strip()


def add_service_errors(form: forms.BaseForm, exc: ApplicationError) -> None:
    """The message at the top of the form, each field error on its field (at the top too
    when the form has no such field)."""
    form.add_error(None, exc.message)
    for field, errors in exc.fields.items():
        if field in form.fields:
            form.add_error(field, list(map(str, errors)))
        else:
            prefix = "" if field in ("__all__", "non_field_errors") else f"{field}: "
            form.add_error(None, [f"{prefix}{e}" for e in errors])


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _model_fields(model: type[models.Model]) -> set[str]:
    """The fields a form may hand to a service: concrete and many-to-many, not the pk."""
    return {
        f.name
        for f in model._meta.get_fields()
        if (f.concrete or f.many_to_many)
        and not f.auto_created
        and not getattr(f, "primary_key", False)
    }


def _row(result: Any) -> models.Model:
    return result[0] if isinstance(result, tuple) else result


def _by_parent(formset: Any) -> bool:
    """Whether the parent's service writes these rows (a plain inline claims it does)."""
    return getattr(getattr(formset, "service_inline", None), "saved_by_parent", True)


def _adopt(obj: models.Model, row: models.Model) -> None:
    """Make `obj` (the admin's instance) the row the service wrote."""
    obj.pk = row.pk
    obj._state.adding = False
    obj._state.db = row._state.db
    obj.refresh_from_db()


class _Services:
    """The three declarations and their argument hooks, shared by admins and inlines."""

    model: type[models.Model]
    service_create: ClassVar[Service | None] = None
    service_update: ClassVar[Service | None] = None
    service_delete: ClassVar[Service | None] = None
    service_object_arg: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `service_create = client_create` in a class body would bind like a method.
        for name in _DECLARATIONS:
            value = cls.__dict__.get(name)
            if isfunction(value):
                setattr(cls, name, staticmethod(value))

    def object_arg(self) -> str:
        return self.service_object_arg or _snake(self.model.__name__)

    def service_create_kwargs(
        self, request: HttpRequest, form: forms.BaseForm, formsets: list[Any]
    ) -> dict[str, Any]:
        names = _model_fields(self.model)
        return {k: v for k, v in form.cleaned_data.items() if k in names}

    def service_update_kwargs(
        self, request: HttpRequest, obj: Any, form: forms.BaseForm, formsets: list[Any]
    ) -> dict[str, Any]:
        names = _model_fields(self.model)
        data = {f: form.cleaned_data[f] for f in form.changed_data if f in names}
        return {self.object_arg(): obj, "data": data}

    def service_delete_kwargs(self, request: HttpRequest, obj: Any) -> dict[str, Any]:
        return {self.object_arg(): obj}

    def _service(self, name: str) -> Service:
        service = getattr(self, name)
        if service is None:
            raise ImproperlyConfigured(f"{type(self).__name__} declares no {name}.")
        return service  # type: ignore[no-any-return]

    def _fresh(self, obj: models.Model) -> Any:
        return self.model._default_manager.get(pk=obj.pk)


class _NoWrites:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(_NoWrites, admin.ModelAdmin):  # type: ignore[type-arg]
    """Records only the system writes: listed and viewed, never changed by hand."""


class ReadOnlyInline(_NoWrites, admin.TabularInline):  # type: ignore[type-arg]
    """Children shown on their parent's page, written elsewhere."""

    extra = 0
    can_delete = False


class ServiceInline(_Services, admin.TabularInline):  # type: ignore[type-arg]
    """Rows of a `ServiceAdmin`'s inline, written by this inline's services (module
    docstring, 5); `saved_by_parent = True` when the parent's service takes them."""

    extra = 0
    saved_by_parent: ClassVar[bool] = False

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.service_inline = self  # type: ignore[attr-defined]  # a new class per call
        return formset

    def _declared(self, name: str) -> bool:
        return self.saved_by_parent or getattr(self, name) is not None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._declared("service_create") and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._declared("service_update") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._declared("service_delete") and super().has_delete_permission(request, obj)

    def save_rows(self, request: HttpRequest, formset: Any) -> None:
        """Each new, changed and deleted row through this inline's services; fills the
        formset's record of them for the admin's change message."""
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        deleted = set(map(id, formset.deleted_forms))
        for form in formset.initial_forms:
            if id(form) in deleted:
                row = self._fresh(form.instance)
                self._row_call(form, "service_delete", self.service_delete_kwargs(request, row))
                formset.deleted_objects.append(form.instance)
            elif form.has_changed():
                kwargs = self.service_update_kwargs(request, self._fresh(form.instance), form, [])
                self._row_call(form, "service_update", kwargs)
                formset.changed_objects.append((form.instance, form.changed_data))
        for form in formset.extra_forms:
            if id(form) in deleted or not form.has_changed():
                continue
            kwargs = self.service_create_kwargs(request, form, [])
            row = _row(self._row_call(form, "service_create", kwargs))
            formset.new_objects.append(row)

    def _row_call(self, form: Any, name: str, kwargs: dict[str, Any]) -> Any:
        try:
            return self._service(name)(**kwargs)
        except ApplicationError as exc:
            # The parent's page shows it at the top: say which row it was about.
            label = f"{self.model._meta.verbose_name} “{form.instance}”"
            raise ApplicationError(
                f"{label}: {describe(exc)}", code=exc.code, status_code=exc.status_code
            ) from exc


class _PartlyRefused(Exception):
    def __init__(self, deleted: int, refusals: list[str]) -> None:
        super().__init__(refusals)
        self.deleted, self.refusals = deleted, refusals


class ServiceAdmin(_Services, admin.ModelAdmin):  # type: ignore[type-arg]
    """A model admin whose writes go through its declared services (module docstring)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.service_create is not None and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.service_update is not None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.service_delete is not None and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing here: the service is called from save_related, which has the inline
        formsets a service may need (Django calls the two back to back)."""

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Iterable[Any], change: bool
    ) -> None:
        formsets = list(formsets)
        obj = form.instance
        if not change:
            kwargs = self.service_create_kwargs(request, form, formsets)
            _adopt(obj, _row(self._service("service_create")(**kwargs)))
        elif form.has_changed() or any(f.has_changed() for f in formsets if _by_parent(f)):
            kwargs = self.service_update_kwargs(request, self._fresh(obj), form, formsets)
            self._service("service_update")(**kwargs)
            _adopt(obj, obj)
        for formset in formsets:
            self.save_formset(request, form, formset, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        inline = getattr(formset, "service_inline", None)
        if inline is not None and not inline.saved_by_parent:
            inline.save_rows(request, formset)
            return
        if inline is None and formset.has_changed():
            raise ImproperlyConfigured(
                f"{type(self).__name__}: the {formset.model.__name__} inline would write rows "
                "without a service; make it a ServiceInline or a ReadOnlyInline."
            )
        formset.save(commit=False)  # writes nothing: records the changes for the log

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal: ApplicationError | None = getattr(request, _REFUSAL, None)
        if refusal is None:
            return form_class
        error: ApplicationError = refusal

        class Refused(form_class):  # type: ignore[misc,valid-type]
            def full_clean(self) -> None:
                super().full_clean()
                if self.is_bound:
                    add_service_errors(self, error)

        Refused.__name__ = form_class.__name__
        return Refused

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
            # Django's transaction for the view has been rolled back (effects with it):
            # the same POST again, this time with the refusal on the form, so nothing saves.
            if request.method != "POST" or hasattr(request, _REFUSAL):
                return self._refused(request, exc, request.get_full_path())
            setattr(request, _REFUSAL, exc)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        """Logged by delete_model, in the deletion's own savepoint: a refused row of a
        bulk delete must not be logged as deleted."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # A list, as Django's own delete view passes (the stubs say QuerySet).
        admin.ModelAdmin.log_deletions(self, request, [obj])  # type: ignore[arg-type]
        self._service("service_delete")(**self.service_delete_kwargs(request, obj))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        deleted, refusals = 0, []
        for obj in queryset:
            label = str(obj)
            try:
                with transaction.atomic(using=router.db_for_write(self.model)):
                    self.delete_model(request, obj)
            except ApplicationError as exc:
                refusals.append(f"{label}: {describe(exc)}")
            else:
                deleted += 1
        if refusals:
            raise _PartlyRefused(deleted, refusals)  # answered by response_action

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # The service decides what goes with the row (and may refuse): the admin
        # permissions of the rows that cascade with it (read-only ones) do not apply.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            opts = self.model._meta
            page = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[quote(object_id)],
                current_app=self.admin_site.name,
            )
            return self._refused(request, exc, page)

    def response_action(
        self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                try:
                    return super().response_action(request, queryset, *args, **kwargs)
                except _PartlyRefused as refused:
                    # The accepted rows stay deleted (this transaction commits).
                    self._report_partial(request, refused)
                    return HttpResponseRedirect(request.get_full_path())
        except ApplicationError as exc:
            return self._refused(request, exc, request.get_full_path())

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)
        except ApplicationError as exc:  # list_editable: Django's transaction rolled back
            return self._refused(request, exc, request.get_full_path())

    def _refused(self, request: HttpRequest, exc: ApplicationError, to: str) -> HttpResponse:
        self.message_user(request, describe(exc), messages.ERROR)
        return HttpResponseRedirect(to)

    def _report_partial(self, request: HttpRequest, refused: _PartlyRefused) -> None:
        if refused.deleted:
            items = model_ngettext(self.opts, refused.deleted)
            self.message_user(request, f"Deleted {refused.deleted} {items}.", messages.SUCCESS)
        for line in refused.refusals:
            self.message_user(request, f"Not deleted: {line}", messages.ERROR)
