"""Template writes: create, update, delete, each checked against its placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext

from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Organization
from mailing import context, rendering
from mailing.models import Mailing, Template
from mailing.services.validation import invalid_input

log = get_logger(__name__)


def template_check(template: Template) -> None:
    errors: dict[str, list[str]] = {}
    if not template.title.strip():
        errors["title"] = [gettext("This field may not be blank.")]
    if template.transport not in Template.Transport.values:
        errors["transport"] = [
            gettext("Unsupported transport %(transport)s; one of %(values)s.")
            % {
                "transport": repr(template.transport),
                "values": ", ".join(Template.Transport.values),
            }
        ]
    variables = template.variables
    if not isinstance(variables, list) or not all(
        isinstance(v, str) and rendering.IDENTIFIER.match(v) for v in variables
    ):
        errors["variables"] = [gettext("A list of identifiers (letters, digits, '_').")]
        variables = []
    allowed = [*context.allowed_placeholders(template.code), *variables]
    for field in ("body", "subject", "html_body"):
        try:
            unknown = rendering.unknown_placeholders(getattr(template, field) or "", allowed)
            if unknown:
                errors[field] = [
                    gettext(
                        "Unknown placeholder(s): %(names)s. Allowed: client fields and the "
                        "code's context (%(allowed)s)."
                    )
                    % {"names": ", ".join(unknown), "allowed": ", ".join(allowed)}
                ]
        except ValueError as exc:
            errors[field] = [str(exc)]
    if template.transport == Template.Transport.EMAIL and not (template.subject or "").strip():
        errors["subject"] = [gettext("An email template needs a subject.")]
    if "\n" in (template.subject or "") or "\r" in (template.subject or ""):
        errors["subject"] = [gettext("One line.")]
    if errors:
        raise invalid_input(errors)


def _template_save(template: Template) -> Template:
    template_check(template)
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError as exc:
        raise invalid_input(
            {"code": [gettext("A template with this code already exists.")]}
        ) from exc
    return template


def template_create(
    *,
    organization: Organization,
    title: str,
    code: str,
    body: str,
    transport: str = Template.Transport.SMS,
    variables: Sequence[str] = (),
    subject: str = "",
    html_body: str = "",
) -> Template:
    template = _template_save(
        Template(
            organization=organization,
            title=title,
            code=code,
            body=body,
            transport=transport,
            variables=list(variables),
            subject=subject,
            html_body=html_body,
        )
    )
    log.info("template_created", template_id=template.pk, organization_id=organization.pk)
    return template


def _template_users_check(template: Template) -> None:
    """Mailings not rendered yet must still give every variable the template needs:
    a new placeholder would otherwise render empty at send time."""
    needed = set(template.variables or [])
    if not needed or template.pk is None:
        return
    unready = (
        Mailing.objects.filter(template=template)
        .filter(
            Q(status=Mailing.Status.SCHEDULED)
            | Q(status=Mailing.Status.RUNNING, materialized_at__isnull=True)
        )
        .values_list("pk", "context")
    )
    lacking = {pk: sorted(needed - set(context or {})) for pk, context in unready}
    lacking = {pk: names for pk, names in lacking.items() if names}
    if lacking:
        detail = "; ".join(f"mailing {pk} lacks {', '.join(n)}" for pk, n in lacking.items())
        raise invalid_input(
            {
                "variables": [
                    gettext("Mailings using this template do not give them: %(detail)s.")
                    % {"detail": detail}
                ]
            },
            gettext("The template is used by mailings that lack its variables."),
        )


def template_update(*, template: Template, data: dict[str, Any]) -> Template:
    for field in ("title", "code", "body", "transport", "variables", "subject", "html_body"):
        if field in data:
            setattr(template, field, list(data[field]) if field == "variables" else data[field])
    _template_users_check(template)
    _template_save(template)
    log.info("template_updated", template_id=template.pk, fields=sorted(data))
    return template


def template_delete(*, template: Template) -> None:
    if template.mailings.exists():
        raise ApplicationError(
            gettext("The template is used by mailings."), code="template_in_use", status_code=409
        )
    log.info("template_deleted", template_id=template.pk)
    template.delete()


def template_validate(*, template: Template) -> None:
    template_check(template)
