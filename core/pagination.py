"""Cursor pagination that keeps the seed's plain JSON array body.

The cursor travels in an RFC 8288 `Link` header (`rel="next"` / `rel="prev"`), so a
client written against the seed (which got an array) keeps working.
"""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class LinkHeaderCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering: str | tuple[str, ...] = "-id"

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
