"""A template's texts per language (issue 16): what a client receives follows its language.

A template's own subject/body/html_body are its default; a `TemplateVariant` gives them
again in one language of settings.LANGUAGES. The materializer and the preview pick a
client's variant with `variant_for` (the client's language normalized, e.g. "pt_BR" ->
"pt-br"), falling back to the default when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from chat.models import Client
from core.errors import ApplicationError
from core.i18n import supported_language
from core.logging import get_logger
from mailing import context
from mailing.models import Template, TemplateVariant
from mailing.services.templates import template_check
from mailing.services.validation import invalid_input

log = get_logger(__name__)


class Texts(Protocol):
    """What a template and each of its variants have in common."""

    subject: str
    body: str
    html_body: str


def template_variant_save(
    *, template: Template, language: str, body: str, subject: str = "", html_body: str = ""
) -> TemplateVariant:
    """Create or replace the template's texts in `language`. Checked as the template itself
    is (placeholders the template's code and variables allow; an email's subject)."""
    code = supported_language(language)
    if code is None:
        spoken = ", ".join(c for c, _ in settings.LANGUAGES)
        raise invalid_input(
            {
                "language": [
                    gettext("Not a language of the platform (%(codes)s).") % {"codes": spoken}
                ]
            }
        )
    # The template's own checks on a copy carrying the variant's texts.
    probe = Template(
        organization_id=template.organization_id,
        title=template.title,
        code=template.code,
        transport=template.transport,
        variables=template.variables,
        body=body,
        subject=subject,
        html_body=html_body,
    )
    template_check(probe)
    if not (body or "").strip():
        raise invalid_input({"body": [gettext("This field may not be blank.")]})
    with transaction.atomic():
        variant, created = TemplateVariant.objects.update_or_create(
            template=template,
            language=code,
            defaults={"body": body, "subject": subject, "html_body": html_body},
        )
    log.info(
        "template_variant_saved",
        template_id=template.pk,
        language=code,
        created=created,
    )
    return variant


def template_variant_get(*, template: Template, language: str) -> TemplateVariant:
    variant = TemplateVariant.objects.filter(
        template=template, language=supported_language(language) or ""
    ).first()
    if variant is None:
        raise ApplicationError(
            gettext("No text in this language."), code="not_found", status_code=404
        )
    return variant


def template_variant_delete(*, variant: TemplateVariant) -> None:
    log.info("template_variant_deleted", template_id=variant.template_id, language=variant.language)
    variant.delete()


def template_variants(template: Template | None) -> dict[str, TemplateVariant]:
    """The template's variants by language code (one query; none without a template)."""
    if template is None or template.pk is None:
        return {}
    return {v.language: v for v in TemplateVariant.objects.filter(template=template)}


def variant_for(
    template: Texts, variants: Mapping[str, TemplateVariant], language: str | None
) -> Texts:
    """The texts a client whose language is `language` receives: its variant, else the
    template's default."""
    code = supported_language(language)
    variant = variants.get(code) if code else None
    return variant if variant is not None else template


def template_preview_all(
    *, template: Template, client_id: int, values: dict[str, str], now: datetime
) -> dict[str, Any] | None:
    """The preview (mailing.context.template_preview) of what this client receives, in its
    language, plus `variants`: the same client rendered in the default and every variant,
    so an author sees each. None if the client is not of the template's organization."""
    base = context.template_preview(template=template, client_id=client_id, values=values, now=now)
    if base is None:
        return None
    language = Client.objects.filter(pk=client_id).values_list("language", flat=True).first() or ""
    variants = template_variants(template)
    rendered = [{"language": "", **base}]
    for code, variant in sorted(variants.items()):
        probe = Template(
            organization_id=template.organization_id,
            code=template.code,
            transport=template.transport,
            subject=variant.subject,
            body=variant.body,
            html_body=variant.html_body,
        )
        shown = context.template_preview(
            template=probe, client_id=client_id, values=values, now=now
        )
        rendered.append({"language": code, **(shown or {})})
    chosen = variant_for(template, variants, language)
    used = chosen.language if isinstance(chosen, TemplateVariant) else ""
    mine = next(r for r in rendered if r["language"] == used)
    return {**mine, "variants": rendered}
