"""Bounded input: what a request may carry is checked before it is read or stored.

1. **Body size, before any byte is buffered.** Bodies past `MAX_REQUEST_BODY` are
   refused (413) in daphne's protocol layer as they arrive, before Twisted spools them
   and before any ASGI or Django code could: `BoundedWebRequest` in
   core/daphne_support.py, which holds everything that depends on daphne internals.
2. **JSON documents.** `JSONParser` refuses (400) documents nested deeper than
   `JSON_MAX_DEPTH` (Python's parser recurses, and a deeply nested value stored in a
   JSON column could break every later serialization of its row) and strings, keys
   included, holding NUL or a lone surrogate (`"\\ud800"`), which no database stores
   and no response can render.
3. **NUL bytes in the URL.** `RejectNulMiddleware` answers 400 (a validation error
   naming the parameter) to a path or query string holding a NUL, in every app at
   once: PostgreSQL refuses NUL in text, so any filter passing it to a query failed
   with a 500.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser as DRFJSONParser

# --- 2. JSON depth ---------------------------------------------------------------------


def _unstorable(text: str) -> bool:
    """NUL (PostgreSQL refuses it in text and jsonb) or a lone surrogate (JSON's \\ud800
    escapes parse, but no UTF-8 encoder, database or response renderer takes them)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(data: Any, max_depth: int) -> str | None:
    """Why a parsed JSON document must be refused, or None: nested deeper than
    `max_depth`, or a string (key or value) that cannot be stored. Iterative."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _unstorable(value):
                return UNSTORABLE
            continue
        if isinstance(value, dict):
            if depth > max_depth:
                return f"nested deeper than {max_depth}"
            for key, child in value.items():
                if _unstorable(key):
                    return UNSTORABLE
                stack.append((child, depth + 1))
        elif isinstance(value, list):
            if depth > max_depth:
                return f"nested deeper than {max_depth}"
            stack.extend((child, depth + 1) for child in value)
    return None


UNSTORABLE = "NUL characters and lone surrogates (\\ud800-\\udfff) are not allowed."


def _unstorable_path(data: Any) -> str:
    """Dotted path (`triggers.0.service`) of the first unstorable string: the error
    names the field, as DRF's own NUL check does. Only called once one was found."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str) and _unstorable(value):
            return path or "non_field_errors"
        if isinstance(value, dict):
            for key, child in value.items():
                here = f"{path}.{key}" if path else str(key)
                if _unstorable(key):
                    return path or "non_field_errors"
                stack.append((child, here))
        elif isinstance(value, list):
            stack.extend(
                (child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(value)
            )
    return "non_field_errors"


class JSONParser(DRFJSONParser):
    """DRF's parser, refusing (400) documents nested deeper than `JSON_MAX_DEPTH`
    (`parse_error`) and strings no database can store (`validation_error` naming the
    field, like DRF's own NUL check on a CharField): a field that keeps JSON as given
    (a mailing's `context`) would otherwise fail on PostgreSQL, or even after the
    commit, when the response is rendered."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        problem = json_problem(data, settings.JSON_MAX_DEPTH)
        if problem == UNSTORABLE:
            # the path may hold the bad key itself: keep it printable
            path = _unstorable_path(data).encode("utf-8", "backslashreplace").decode()
            raise ValidationError({path.replace("\x00", "\\x00"): [UNSTORABLE]})
        if problem is not None:
            raise ParseError(f"JSON parse error - {problem}.")
        return data


# --- 3. NUL bytes in the URL -----------------------------------------------------------


class RejectNulMiddleware(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> JsonResponse | None:
        if "\x00" in request.path:
            return _nul_error({"path": [NUL_MESSAGE]})
        bad = {
            key.replace("\x00", "\\x00"): [NUL_MESSAGE]
            for key, values in request.GET.lists()
            if "\x00" in key or any("\x00" in value for value in values)
        }
        return _nul_error(bad) if bad else None


NUL_MESSAGE = "Null characters are not allowed."  # DRF's CharField says the same


def _nul_error(fields: dict[str, list[str]]) -> JsonResponse:
    # The shape core.errors gives every validation error.
    body = {"code": "validation_error", "message": "Invalid input.", "fields": fields}
    return JsonResponse({"error": body}, status=400)
