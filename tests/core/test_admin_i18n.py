"""The admin in the reader's language (issue 16): model names, field labels and choice
labels come from the models' verbose names (gettext_lazy), so they follow the language
the request activated, like the admin's own strings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_catalogs")]


def _page(staff: Any, path: str, language: str) -> str:
    response = staff.get(path, headers={"accept-language": language})
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


@pytest.mark.parametrize(
    "language, names",
    [
        # one model of each app: core, chat, mailing, escalation, widget
        ("ru", ["API-ключи", "Обращения", "Шаблоны", "Инциденты", "Каналы сайтов"]),
        (
            "pt-br",
            [
                "Chaves de API",
                "Atendimentos",
                "Modelos",
                "Incidentes",
                "Caixas de entrada dos sites",
            ],
        ),
        ("en", ["API keys", "Help desks", "Templates", "Incidents", "Website inboxes"]),
    ],
)
def test_admin_index_names_the_models_in_the_readers_language(staff, language, names):
    index = _page(staff, "/admin/", language)
    for name in names:
        assert f">{name}<" in index, (language, name)


def test_changelist_columns_filters_and_choice_labels_in_russian(staff, org):
    from mailing.services import mailing_create

    now = timezone.now()
    mailing_create(organization=org, text="hi", start_at=now, end_at=now + timedelta(hours=1))
    page = _page(staff, "/admin/mailing/mailing/", "ru")
    assert "Выберите рассылка для изменения" in page  # Django's "Select %s to change"
    assert "Запланирована" in page  # the status' choice label, in the column and the filter
    assert "Кампания" in page  # kind's
    assert "Scheduled" not in page


def test_change_form_labels_in_portuguese(staff, org, make_client):
    client = make_client(org)
    page = _page(staff, f"/admin/chat/client/{client.pk}/change/", "pt-br")
    for label in ("Telefone", "Código da operadora", "Fuso horário", "Canal"):
        assert f">{label}:<" in page, label
    assert ">Operator code:<" not in page
