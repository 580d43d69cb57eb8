"""The generic views every HTTP API module builds on.

`ListView` is a DRF `ListAPIView` with the platform's policy filled in: the one
pagination (`core.pagination`), pages ordered by the view's `ordering`, and the
organization filter resolved by the one resolver (`core.scope.organization_scope`).
A subclass says what to list (`list_queryset`), what it looks like
(`serializer_class`) and which scope each method needs (`required_scopes`); it may add
a `post` for the collection's create.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import generics

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
