"""The API's one pagination: cursors, and the seed's plain JSON array body.

Every list endpoint uses `LinkHeaderCursorPagination` (`DEFAULT_PAGINATION_CLASS`,
through the generic list views of `core.api`). A view orders its pages by declaring
`ordering` (a unique or nearly unique field first, then `-id`); the class reads it, so
there is no pagination subclass per view (tests/core/test_api_policy.py checks both).

The cursor travels in an RFC 8288 `Link` header (`rel="next"` / `rel="prev"`), so a
client written against the seed (which got an array) keeps working.

A cursor is client input: DRF checks its encoding but filters on its position as is,
so a crafted one (`p=abc` against an id, a date that is not one, an integer past
64 bits) failed in the query with a 500. The position is checked against the ordering
field first and a bad one is DRF's own 404 "Invalid cursor".
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

BIGINT = 2**63


class LinkHeaderCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering: str | tuple[str, ...] = "-id"
    _model: type[models.Model] | None = None

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and self._model is not None:
            self._check_position(self._model, cursor.position)
        return cursor

    def _check_position(self, model: type[models.Model], position: Any) -> None:
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        try:
            field = model._meta.get_field(ordering.lstrip("-"))
        except FieldDoesNotExist:
            return  # an annotation: DRF's own handling
        if not isinstance(field, models.Field):
            return  # a reverse relation: not orderable by position
        if "\x00" in str(position):
            raise NotFound(self.invalid_cursor_message)
        try:
            value = field.to_python(position)
        except (ValidationError, ValueError, TypeError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None
        if isinstance(value, int) and not -BIGINT <= value < BIGINT:
            raise NotFound(self.invalid_cursor_message)

    def get_paginated_response(self, data: Any) -> Response:
        links = []
        if (url := self.get_next_link()) is not None:
            links.append(f'<{url}>; rel="next"')
        if (url := self.get_previous_link()) is not None:
            links.append(f'<{url}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return schema
