"""Checks of a mailing's values, shared by creating and updating (and admin forms)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.translation import gettext

from chat.models import Client
from core.errors import ApplicationError
from core.models import Organization
from core.validators import operator_code_validator, tag_validator
from mailing import rendering
from mailing.models import Mailing, Template, Transport

MAX_FILTER_VALUES = 100
MAX_CLIENT_IDS = 10_000


def invalid_input(fields: dict[str, list[str]], message: str = "") -> ApplicationError:
    return ApplicationError(
        message or gettext("Invalid input."), code="validation_error", fields=fields
    )


def _check_list(values: Any, field: str, validator: Any, errors: dict[str, list[str]]) -> list[str]:
    if not isinstance(values, list | tuple):
        errors[field] = [gettext("Expected a list.")]
        return []
    if len(values) > MAX_FILTER_VALUES:
        errors[field] = [gettext("At most %(count)d values.") % {"count": MAX_FILTER_VALUES}]
        return []
    bad = []
    for value in values:
        try:
            if not isinstance(value, str):
                raise TypeError
            validator(value)
        except Exception:
            bad.append(repr(value))
    if bad:
        errors[field] = [f"Invalid value(s): {', '.join(bad[:10])}. {validator.message}"]
    return list(dict.fromkeys(str(v) for v in values))


def _check_context(context: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(context, dict):
        errors["context"] = [gettext("Expected an object of name -> text or number.")]
        return {}
    bad = [
        k
        for k, v in context.items()
        if not rendering.IDENTIFIER.match(str(k))
        or not isinstance(v, str | int | float | bool)
        or len(str(v)) > 1000
    ]
    if bad:
        errors["context"] = [
            f"Invalid entries: {', '.join(map(str, bad[:10]))} "
            "(names are identifiers, values text or numbers up to 1000 characters)."
        ]
    return dict(context)


def _check_transports(
    transports: Any, template: Template | None, errors: dict[str, list[str]]
) -> list[str]:
    """Transports in order of preference: known, distinct; email needs a template with a
    subject (a plain text has none)."""
    if not isinstance(transports, list | tuple) or not all(isinstance(t, str) for t in transports):
        errors["transports"] = [gettext("Expected a list.")]
        return []
    unknown = [t for t in transports if t not in Transport.values]
    if unknown:
        errors["transports"] = [
            f"Unknown transport(s): {', '.join(map(repr, unknown[:5]))}; "
            f"known: {', '.join(Transport.values)}."
        ]
        return []
    if len(set(transports)) != len(transports):
        errors["transports"] = [gettext("Each transport at most once.")]
        return []
    effective = list(transports) or ([template.transport] if template is not None else [])
    if Transport.EMAIL in effective and (template is None or not template.subject.strip()):
        errors["transports"] = [gettext("Email needs a template with a subject.")]
    return list(transports)


def mailing_values_check(
    *, organization: Organization, values: dict[str, Any], now: datetime, creating: bool
) -> None:
    """Check a mailing's full set of values; raises ApplicationError with field errors."""
    errors: dict[str, list[str]] = {}
    start_at, end_at = values["start_at"], values["end_at"]
    if start_at is None:
        errors["start_at"] = [gettext("This field is required.")]
    if end_at is None:
        errors["end_at"] = [gettext("This field is required.")]
    if start_at is not None and end_at is not None:
        if end_at <= start_at:
            errors["end_at"] = [gettext("The end time must be after the start time.")]
        elif creating and end_at <= now:
            errors["end_at"] = [gettext("The end time is in the past.")]
    values["operator_codes"] = _check_list(
        values["operator_codes"], "operator_codes", operator_code_validator, errors
    )
    values["tags"] = _check_list(values["tags"], "tags", tag_validator, errors)
    values["context"] = _check_context(values["context"], errors)
    priority = values["priority"]
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 10:
        errors["priority"] = [gettext("An integer from 1 (lowest) to 10 (highest).")]
    ws, we = values["window_start"], values["window_end"]
    if (ws is None) != (we is None):
        errors["window_end" if we is None else "window_start"] = [
            gettext("Give both window_start and window_end, or neither.")
        ]
    elif ws is not None and ws == we:
        errors["window_end"] = [gettext("The window must not be empty (start equals end).")]
    template: Template | None = values["template"]
    text: str = values["text"] or ""
    values["transports"] = _check_transports(values.get("transports") or [], template, errors)
    if template is not None and template.organization_id != organization.pk:
        errors["template"] = [gettext("Template not found.")]
    elif template is not None and text:
        errors["text"] = [gettext("Give a text or a template, not both.")]
    elif template is not None:
        missing = [v for v in template.variables if v not in values["context"]]
        if missing:
            errors["context"] = [
                gettext("The template needs: %(names)s.") % {"names": ", ".join(missing)}
            ]
    elif not text.strip():
        errors["text"] = [gettext("Give a text or a template.")]
    else:
        try:
            unknown = rendering.unknown_placeholders(
                text, [*rendering.CLIENT_FIELDS, *values["context"]]
            )
            if unknown:
                errors["text"] = [
                    gettext("Unknown placeholder(s): %(names)s (client fields or context names).")
                    % {"names": ", ".join(unknown)}
                ]
        except ValueError as exc:
            errors["text"] = [str(exc)]
    client_ids = values["client_ids"]
    if not isinstance(client_ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in client_ids
    ):
        errors["client_ids"] = [gettext("A list of client ids.")]
    elif len(client_ids) > MAX_CLIENT_IDS:
        errors["client_ids"] = [gettext("At most %(count)d ids.") % {"count": MAX_CLIENT_IDS}]
    else:
        ids = list(dict.fromkeys(client_ids))
        known = set(
            Client.objects.filter(organization=organization, pk__in=ids).values_list(
                "pk", flat=True
            )
        )
        unknown_ids = [i for i in ids if i not in known]
        if unknown_ids:
            errors["client_ids"] = [
                gettext("Unknown client id(s): %(ids)s.") % {"ids": unknown_ids[:20]}
            ]
        values["client_ids"] = ids
    if values["kind"] == Mailing.Kind.NOTIFICATION and not (
        values["client_ids"] or values["tags"] or values["operator_codes"]
    ):
        errors["client_ids"] = [gettext("Give client ids and/or tags.")]
    if errors:
        raise invalid_input(errors)
