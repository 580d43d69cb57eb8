"""A small, safe renderer for `{{ name }}` placeholders.

Django's template engine is not used on user input: it can reach attributes and
methods of whatever it is given (template injection). Here a placeholder is a bare
identifier looked up in a flat dict of strings; nothing else is interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.html import escape

# Client fields a template may use without declaring them.
CLIENT_FIELDS = ("name", "phone", "operator_code", "tag", "timezone", "email")

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,49})\s*\}\}")
_BRACES = re.compile(r"\{\{|\}\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")


def placeholders(body: str) -> list[str]:
    """Names used in `body`. Raises ValueError on a malformed `{{ ... }}`."""
    stripped = _PLACEHOLDER.sub("", body)
    if _BRACES.search(stripped):
        raise ValueError("Malformed placeholder: use {{ name }} with a plain identifier.")
    return list(dict.fromkeys(_PLACEHOLDER.findall(body)))


def unknown_placeholders(body: str, allowed: Iterable[str]) -> list[str]:
    allowed_set = set(allowed)
    return [name for name in placeholders(body) if name not in allowed_set]


def render(body: str, values: Mapping[str, Any]) -> str:
    """Substitute every placeholder; an unknown one (validated away earlier) renders empty."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), body)


def render_html(body: str, values: Mapping[str, Any]) -> str:
    """Like `render`, every value HTML-escaped: a client's name cannot inject markup into
    an email. The body's own markup is trusted: only organization admins write templates."""
    return _PLACEHOLDER.sub(lambda m: escape(str(values.get(m.group(1), ""))), body)


def client_values_from_dict(client: Mapping[str, Any]) -> dict[str, str]:
    return {field: str(client.get(field, "") or "") for field in CLIENT_FIELDS}
