"""The OpenAPI schema says which API key scope each operation needs (core/permissions.py):
a line in its description, for people reading /docs/, and `x-api-key-scope`, for tools."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from core.permissions import ScopePermission, required_scope


class ScopedAutoSchema(AutoSchema):
    def _scope(self) -> str | None:
        if ScopePermission not in getattr(self.view, "permission_classes", ()):
            return None  # public, or a view with its own permission classes
        return required_scope(self.view, self.method)

    def get_description(self) -> str:  # type: ignore[override]
        description = super().get_description() or ""
        scope = self._scope()
        if scope is None:
            return description
        note = f"API keys need the `{scope}` scope (docs/security.md, API key scopes)."
        return f"{description}\n\n{note}" if description else note

    def get_extensions(self) -> dict[str, Any]:
        extensions = dict(super().get_extensions() or {})
        scope = self._scope()
        if scope is not None:
            extensions["x-api-key-scope"] = scope
        return extensions
