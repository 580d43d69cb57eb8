"""The generic views every HTTP API module builds on.

`ListView` is a DRF `ListAPIView` with the platform's policy filled in: the one
pagination (`core.pagination`), pages ordered by the view's `ordering`, and the
organization filter resolved by the one resolver (`core.scope.organization_scope`).
A subclass says what to list (`list_queryset`), what it looks like
(`serializer_class`) and which scope each method needs (`required_scopes`); it may add
a `post` for the collection's create.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import generics, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

from core.models import Organization
from core.pagination import LinkHeaderCursorPagination
from core.scope import organization_scope


class ListView(generics.ListAPIView):  # type: ignore[type-arg]
    pagination_class = LinkHeaderCursorPagination
    ordering: str | tuple[str, ...] = "-id"

    def list_queryset(self, organization: Organization | None) -> QuerySet[Any]:
        """The rows to list; `organization` None means every one the caller sees."""
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        return self.list_queryset(organization_scope(self.request, required=False))


def slug_of(organization: Organization | None) -> str | None:
    """The selectors' `organization_slug` filter for a resolved organization."""
    return organization.slug if organization is not None else None


class PlainRepresentation:
    """Serializer mixin: DRF's `to_representation`, for objects that are model instances
    (read-only representations), with the per-field lookup done once per serializer.

    DRF's version walks `_readable_fields` (a generator) and each field's `get_attribute`
    (a `Mapping` ABC check, a callable check and exception wrapping per attribute) for
    every field of every row, and each `DateTimeField` looks the current time zone up
    again (an asgiref `Local`); on a list page of help desks with their client and last
    message that was the largest part of the request. Here a field's source is read with
    plain `getattr` along its `source_attrs`, and a default-format `DateTimeField` is
    written as DRF writes it with the time zone looked up once per object; anything that
    does not fit the plain case (a dict instance, a callable attribute, a null in the
    middle of a source, a missing related row, `source="*"`, a naive datetime) takes
    DRF's own path for that field, so the output is the same.
    """

    def get_fields(self) -> dict[str, Any]:
        # A ModelSerializer builds its fields from the model on every instance (about a
        # third of a help-desk page's serialization): build them once per class and hand
        # each instance copies, which is what DRF does with declared fields anyway.
        built: dict[str, Any] | None = type(self).__dict__.get("_plain_fields")
        if built is None:
            built = super().get_fields()  # type: ignore[misc]
            type.__setattr__(type(self), "_plain_fields", built)
        return copy.deepcopy(built)

    def _representation_plan(self) -> list[tuple[str, list[str], Any, bool]]:
        """Each readable field with its source path. Without a context (an event's
        payload, a POST's answer) the plan is the class's, built once from one
        context-free instance: a serializer's `fields` are otherwise deep-copied for
        every instance (its nested serializers' fields too), about a tenth of a
        `POST /api/send-message/`, which builds four. With a context (a view's list),
        the instance's own fields, which may read it."""
        shared = not self.context  # type: ignore[attr-defined]
        owner: Any = type(self) if shared else self
        plan: list[tuple[str, list[str], Any, bool]] | None = owner.__dict__.get("_plain_plan")
        if plan is None:
            source: Any = type(self)() if shared else self
            plan = [
                (f.field_name, f.source_attrs, f, _plain_datetime(f))
                for f in source.fields.values()
                if not f.write_only
            ]
            if shared:
                type.__setattr__(owner, "_plain_plan", plan)
            else:
                self.__dict__["_plain_plan"] = plan
        return plan

    def to_representation(self, instance: Any) -> Any:
        if isinstance(instance, Mapping):
            return super().to_representation(instance)  # type: ignore[misc]
        plan = self._representation_plan()
        out: dict[str, Any] = {}
        zone: Any = None
        for name, attrs, field, plain_datetime in plan:
            value = instance
            try:
                for attr in attrs:
                    if value is None:  # a null in the middle: DRF's default/null/skip rules
                        raise AttributeError(attr)
                    value = getattr(value, attr)
            except (AttributeError, ObjectDoesNotExist):
                value = _DRF
            if value is _DRF or not attrs or callable(value):
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
            if value is None or (isinstance(value, PKOnlyObject) and value.pk is None):
                out[name] = None
            elif plain_datetime and isinstance(value, datetime) and value.tzinfo is not None:
                if zone is None:
                    zone = timezone.get_current_timezone()
                text = value.astimezone(zone).isoformat()
                out[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
            else:
                out[name] = field.to_representation(value)
        return out


_DRF = object()  # "let DRF's get_attribute decide this field"


def _plain_datetime(field: Any) -> bool:
    """DRF's own DateTimeField with its default output (ISO 8601 in the current zone)."""
    return (
        type(field) is serializers.DateTimeField
        and "format" not in field.__dict__
        and "timezone" not in field.__dict__
        and str(api_settings.DATETIME_FORMAT).lower() == "iso-8601"
    )
