"""Languages (issue 16): who reads what in which language, and the translations guard rail.

The catalogs are compiled once per run (`compiled_catalogs`) with the same code the install
uses when GNU msgfmt is missing, so these tests need no system package.
"""

from __future__ import annotations

import gettext
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core import mail
from django.db import transaction
from django.test import Client as DjangoClient
from django.test import RequestFactory
from django.utils import timezone, translation

from core.i18n import language_or_default, supported_language, visitor_language
from core.models import AgentPreference

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "contrib"))
import check_i18n  # noqa: E402  (contrib/ is not a package)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_catalogs")]


def _login(user: Any, **headers: str) -> DjangoClient:
    browser = DjangoClient(headers=headers)
    browser.force_login(user)
    return browser


# --- the API ------------------------------------------------------------------------------


def test_api_error_follows_accept_language_russian(agent):
    # an invalid body, from an agent key, in a Russian browser
    response = agent.client().post(
        "/api/send-message/", {"message": "x"}, format="json", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"  # codes are never translated
    assert error["message"] == "Некорректные данные."
    assert error["fields"]["help_desk"] == ["Обязательное поле."]  # DRF's own catalog
    assert response["Content-Language"] == "ru"


def test_api_errors_in_portuguese_and_english(agent):
    api = agent.client()
    pt = api.get("/api/help-desks/?organization=nowhere", HTTP_ACCEPT_LANGUAGE="pt-BR")
    assert pt.status_code == 404
    assert pt.json()["error"]["message"] == "Organização não encontrada."
    en = api.get("/api/help-desks/?organization=nowhere", HTTP_ACCEPT_LANGUAGE="de-DE")
    assert en.json()["error"]["message"] == "Organization not found."  # not spoken: English


def test_api_key_requests_follow_accept_language_not_the_saved_preference(agent):
    AgentPreference.objects.create(user=agent.user, language="ru")
    response = agent.client().get(
        "/api/help-desks/?organization=nowhere", HTTP_ACCEPT_LANGUAGE="pt-BR"
    )
    assert response.json()["error"]["message"] == "Organização não encontrada."


def test_session_api_error_follows_the_saved_preference(agent):
    AgentPreference.objects.create(user=agent.user, language="ru")
    browser = _login(agent.user, accept_language="pt-BR")
    response = browser.get("/api/help-desks/?organization=nowhere")
    assert response.json()["error"]["message"] == "Организация не найдена."


# --- pages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "lang", "button"),
    [
        ("ru,en;q=0.5", "ru", "Войти"),
        ("pt-BR,pt;q=0.9", "pt-br", "Entrar"),
        ("pt-PT", "pt-br", "Entrar"),  # the Portuguese the platform speaks
        ("en-GB", "en", "Log in"),
        ("ja", "en", "Log in"),  # not spoken: LANGUAGE_CODE
    ],
)
def test_login_page_by_accept_language(accept, lang, button):
    page = DjangoClient(headers={"accept-language": accept}).get("/login/")
    html = page.content.decode()
    assert f'<html lang="{lang}">' in html
    assert f'class="primary">{button}</button>' in html
    assert page["Content-Language"] == lang
    assert "Accept-Language" in page["Vary"]


def test_console_by_saved_preference_over_the_browser(agent):
    AgentPreference.objects.create(user=agent.user, language="pt-br")
    html = _login(agent.user, accept_language="ru").get("/").content.decode()
    assert '<html lang="pt-br">' in html
    assert "Pular para o conteúdo" in html
    assert '<script src="/jsi18n/"></script>' in html


@pytest.mark.parametrize("saved", ["", "de", "<script>"])
def test_console_without_a_usable_preference_follows_the_browser(agent, saved):
    AgentPreference.objects.create(user=agent.user, language=saved)
    html = _login(agent.user, accept_language="ru").get("/").content.decode()
    assert '<html lang="ru">' in html and "Перейти к содержимому" in html


def test_wrong_password_message_is_translated(agent):
    page = DjangoClient(headers={"accept-language": "ru"}).post(
        "/login/", {"username": agent.user.username, "password": "nope"}
    )
    assert "Имя пользователя и пароль не подходят" in page.content.decode()


# --- the JavaScript catalog ---------------------------------------------------------------


def _js(text: str) -> str:
    """How the catalog spells a string (JSON, non-ASCII escaped)."""
    return json.dumps(text)[1:-1]


def test_javascript_catalog_per_language_with_etag():
    anonymous = DjangoClient()
    ru = anonymous.get("/jsi18n/", headers={"accept-language": "ru"})
    pt = anonymous.get("/jsi18n/", headers={"accept-language": "pt-BR"})
    assert ru.status_code == pt.status_code == 200
    assert ru["Content-Type"].startswith("text/javascript")
    assert _js("Отправить") in ru.content.decode() and "Enviar" in pt.content.decode()
    assert _js("Отправить") not in pt.content.decode()
    assert "pluralidx" in ru.content.decode() and "n%10" in ru.content.decode()  # 3 forms
    assert ru["ETag"] != pt["ETag"]
    assert "no-cache" in ru["Cache-Control"] and "Accept-Language" in ru["Vary"]
    # the browser's revalidation costs a 304, per language
    again = anonymous.get(
        "/jsi18n/", headers={"accept-language": "ru", "if-none-match": ru["ETag"]}
    )
    assert again.status_code == 304
    switched = anonymous.get(
        "/jsi18n/", headers={"accept-language": "pt-BR", "if-none-match": ru["ETag"]}
    )
    assert switched.status_code == 200


def test_javascript_catalog_lang_parameter_for_the_widget():
    pt = DjangoClient().get("/jsi18n/?lang=pt-br", headers={"accept-language": "ru"})
    assert "Enviar" in pt.content.decode() and pt["Content-Language"] == "pt-br"
    # the widget: the browser's language when spoken, else the inbox's default
    both = DjangoClient().get("/jsi18n/?default=pt-br", headers={"accept-language": "ru"})
    assert both["Content-Language"] == "ru"
    fallback = DjangoClient().get("/jsi18n/?default=pt-br", headers={"accept-language": "de"})
    assert fallback["Content-Language"] == "pt-br" and "Enviar" in fallback.content.decode()
    # an unknown or hostile value is ignored, never reflected
    odd = DjangoClient().get("/jsi18n/?lang=</script>", headers={"accept-language": "ru"})
    assert odd.status_code == 200 and "</script>" not in odd.content.decode()
    assert odd["Content-Language"] == "ru"


# --- choosing a language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        ("de-DE,pt-BR;q=0.8,ru;q=0.5", "ru", "pt-br"),
        ("de-DE,fr;q=0.8", "ru", "ru"),  # nothing spoken: the inbox's default
        ("", "pt-br", "pt-br"),
        ("de", "", "en"),  # no default either: LANGUAGE_CODE
        ("*", "ru", "ru"),
    ],
)
def test_visitor_language(header, default, expected):
    request = RequestFactory().get("/", headers={"accept-language": header} if header else {})
    assert visitor_language(request, default) == expected


def test_supported_language_normalizes():
    assert supported_language("pt_BR") == "pt-br"
    assert supported_language("RU-ru") == "ru"
    assert supported_language("de") is None and supported_language("") is None
    assert language_or_default("de", "pt-BR") == "pt-br"


def test_russian_has_three_plural_forms():
    forms = {}
    with translation.override("ru"):
        for n in (1, 3, 5, 11, 21, 22, 25):
            forms[n] = translation.ngettext(
                "Cancelled %(count)d mailing.", "Cancelled %(count)d mailings.", n
            ) % {"count": n}
    assert forms[1] == "Отменена 1 рассылка." and forms[21] == "Отменена 21 рассылка."
    assert forms[3] == "Отменено 3 рассылки." and forms[22] == "Отменено 22 рассылки."
    assert forms[5] == "Отменено 5 рассылок." and forms[11] == "Отменено 11 рассылок."
    with translation.override("pt-br"):
        assert translation.ngettext("Cancelled %(count)d mailing.", "x", 1) % {"count": 1} == (
            "1 disparo cancelado."
        )


# --- emails -------------------------------------------------------------------------------


def test_incident_email_in_each_recipients_language(org, make_agent, settings):
    from escalation.incidents import incident_record_occurrences
    from escalation.jobs import incident_step_notify
    from escalation.models import IncidentStep
    from escalation.rules import rule_save, team_save

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    for name, language in (("ann", "ru"), ("bia", "pt-br"), ("cal", "")):
        user = make_agent(name, org).user
        user.email = f"{name}@example.com"
        user.save()
        AgentPreference.objects.create(user=user, language=language)
    team_save(organization=org, slug="oncall", members=["ann", "bia", "cal"])
    rule = rule_save(
        organization=org,
        code="r1",
        triggers=[{"service": "api", "status": 500}],
        levels=[{"level": 1, "after_occurrences": 1, "team": "oncall"}],
    )
    now = timezone.now()
    with transaction.atomic():
        incident = incident_record_occurrences(rule_id=rule.pk, count=3, first_at=now, last_at=now)
    assert incident is not None
    step = IncidentStep.objects.get(incident=incident, kind="level")

    assert incident_step_notify(step.pk) == 3

    sent = {m.to[0]: m for m in mail.outbox}
    assert sent["ann@example.com"].subject == "[acme] Инцидент r1 эскалирован до уровня 1"
    assert "3 срабатывания" in sent["ann@example.com"].body
    assert sent["bia@example.com"].subject == "[acme] Incidente r1 escalado para o nível 1"
    assert "3 ocorrências" in sent["bia@example.com"].body
    assert sent["cal@example.com"].subject == "[acme] Incident r1 escalated to level 1"
    assert "3 occurrences" in sent["cal@example.com"].body


# --- the guard rail (contrib/check_i18n.py) -------------------------------------------------


def _template_problems(tmp_path: Path, source: str) -> list[str]:
    path = check_i18n.ROOT / "var" / f"check-{tmp_path.name}.html"
    path.write_text(source, encoding="utf-8")
    try:
        return check_i18n.template_problems(path)
    finally:
        path.unlink()


def test_check_finds_unmarked_template_text(tmp_path):
    problems = _template_problems(
        tmp_path,
        '{% load i18n %}<h1>{% translate "Inbox" %}</h1>\n<p>Hello {{ name }}</p>\n'
        '<input placeholder="Search">\n'
        '<button aria-label="{% translate "Close" %}">&times;</button>',
    )
    assert len(problems) == 2
    assert ":2: " in problems[0] and "Hello" in problems[0]
    assert ":3: " in problems[1] and "Search" in problems[1]


def test_check_accepts_marked_text_scripts_and_punctuation(tmp_path):
    source = (
        '{% extends "base.html" %}{% load i18n %}outside every block\n'
        "{% block body_class %}page-x{% endblock %}{% block body %}\n"
        "<p>{% blocktranslate with n=count %}{{ n }} new messages{% endblocktranslate %}</p>\n"
        "<script>const x = 'not text';</script><style>p::after{content:'x'}</style>\n"
        "{# a comment #}{% comment %}Draft text{% endcomment %}<p>&larr; · 42 — {{ x }}</p>\n"
        "{% endblock %}"
    )
    assert _template_problems(tmp_path, source) == []


def _po(tmp_path: Path, body: str) -> Path:
    path = check_i18n.ROOT / "var" / f"check-{tmp_path.name}.po"
    header = (
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
        '"Plural-Forms: nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && '
        'n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);\\n"\n\n'
    )
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('msgid "Send"\nmsgstr ""\n', "has no translation"),
        ('#, fuzzy\nmsgid "Send"\nmsgstr "Отправить"\n', "is fuzzy"),
        (
            'msgid "%(n)d file"\nmsgid_plural "%(n)d files"\n'
            'msgstr[0] "%(n)d файл"\nmsgstr[1] "%(n)d файла"\nmsgstr[2] ""\n',
            "has no translation",
        ),
        ('msgid "Hi %(name)s"\nmsgstr "Привет %(nom)s"\n', "placeholders"),
    ],
)
def test_check_refuses_incomplete_po(tmp_path, body, problem):
    path = _po(tmp_path, body)
    try:
        problems = check_i18n.po_problems(path)
    finally:
        path.unlink()
    assert problems and all(problem in p for p in problems)


def test_compiled_catalog_reads_back_with_plurals(tmp_path):
    path = _po(
        tmp_path,
        'msgid "Send"\nmsgstr "Отправить"\n\n'
        'msgid "%(n)d file"\nmsgid_plural "%(n)d files"\n'
        'msgstr[0] "%(n)d файл"\nmsgstr[1] "%(n)d файла"\nmsgstr[2] "%(n)d файлов"\n',
    )
    try:
        assert check_i18n.po_problems(path) == []
        check_i18n.mo_write(check_i18n.po_parse(path), tmp_path / "x.mo")
    finally:
        path.unlink()
    with open(tmp_path / "x.mo", "rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    assert catalog.gettext("Send") == "Отправить"
    assert [catalog.ngettext("%(n)d file", "%(n)d files", n) for n in (1, 2, 5)] == [
        "%(n)d файл",
        "%(n)d файла",
        "%(n)d файлов",
    ]


def test_check_command_exits_nonzero_on_problems(tmp_path):
    # the lint step runs the script: a problem must fail it (exit 1), nothing printed = 0
    result = subprocess.run(
        [sys.executable, str(ROOT / "contrib" / "check_i18n.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == (1 if result.stdout.strip() else 0), result.stdout


# --- what clients receive: a template's variant per language -------------------------------


def _promo_template(org: Any) -> Any:
    from mailing.services import template_create
    from mailing.services.variants import template_variant_save

    template = template_create(
        organization=org, title="Order", code="order", body="Hello {{ name }}, your order is ready."
    )
    template_variant_save(
        template=template, language="ru", body="Здравствуйте, {{ name }}! Ваш заказ готов."
    )
    template_variant_save(
        template=template, language="pt_BR", body="Olá, {{ name }}! Seu pedido está pronto."
    )
    return template


@pytest.mark.django_db(transaction=True)
def test_mailing_reaches_each_client_in_its_language_at_the_sender(
    org, make_client, sender, start_worker
):
    from mailing.models import MailingMessage
    from mailing.services import mailing_create
    from tests.conftest import wait_until

    # given: a template in English (its own texts), Russian and Brazilian Portuguese, and
    # clients reading each of them, one in a language the platform does not speak
    template = _promo_template(org)
    clients = {
        make_client(org, name="Olga", language="ru").pk: "Здравствуйте, Olga! Ваш заказ готов.",
        make_client(org, name="João", language="pt-BR").pk: "Olá, João! Seu pedido está pronto.",
        make_client(org, name="Ann", language="").pk: "Hello Ann, your order is ready.",
        make_client(org, name="Hans", language="de").pk: "Hello Hans, your order is ready.",
    }
    sender.control(keep_texts=True)
    start_worker()
    try:
        # when the mailing runs through a real worker and the simulator
        now = timezone.now()
        mailing = mailing_create(
            organization=org,
            template=template,
            start_at=now,
            end_at=now + timedelta(minutes=10),
        )
        wait_until(lambda: sender.stats()["unique"] == len(clients), timeout=60)
        # then the sender received each client's text in its language, once
        messages = MailingMessage.objects.filter(mailing=mailing)
        received = {
            m.client_id: httpx.get(f"{sender.url}/messages/{m.pk}").json() for m in messages
        }
    finally:
        sender.control(keep_texts=False)
    assert {pk: r["text"] for pk, r in received.items()} == clients
    assert all(r["accepted"] == 1 for r in received.values())


def test_variant_api_and_the_preview_showing_each(agent, make_client, make_agent, make_org):
    template = _promo_template(agent.organization)
    api = agent.client()
    url = f"/api/templates/{template.pk}/variants/"
    # the representation lists the variants
    listed = api.get(f"/api/templates/{template.pk}/").json()["variants"]
    assert [(v["language"], v["body"][:5]) for v in listed] == [
        ("pt-br", "Olá, "),
        ("ru", "Здрав"),
    ]
    # PUT replaces one (its language normalized), DELETE removes it
    put = api.put(url + "ru/", {"body": "Привет, {{ name }}!"}, format="json")
    assert put.status_code == 200 and put.json()["language"] == "ru"
    # the preview: what this client receives (its language) and every language beside
    olga = make_client(agent.organization, name="Olga", language="ru")
    preview = api.post(f"/api/templates/{template.pk}/preview/", {"client": olga.pk}).json()
    assert (preview["language"], preview["text"]) == ("ru", "Привет, Olga!")
    assert {v["language"]: v["text"] for v in preview["variants"]} == {
        "": "Hello Olga, your order is ready.",
        "pt-br": "Olá, Olga! Seu pedido está pronto.",
        "ru": "Привет, Olga!",
    }
    assert api.delete(url + "ru/").status_code == 204
    preview = api.post(f"/api/templates/{template.pk}/preview/", {"client": olga.pk}).json()
    assert (preview["language"], preview["text"]) == ("", "Hello Olga, your order is ready.")


def test_variant_api_refuses_attackers_and_bad_input(agent, make_agent, make_org):
    from rest_framework.test import APIClient

    from core.services import api_key_create

    template = _promo_template(agent.organization)
    url = f"/api/templates/{template.pk}/variants/ru/"
    good = {"body": "Привет"}
    # anonymous
    assert APIClient().put(url, good, format="json").status_code == 401
    # another tenant's agent: the template does not exist for them
    mallory = make_agent("mallory", make_org("evil"))
    assert mallory.client().put(url, good, format="json").status_code == 404
    assert mallory.client().delete(url).status_code == 404
    # an integration key without the admin scope
    _, raw = api_key_create(name="bot", organization=agent.organization, scopes=["read"])
    bot = APIClient()
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bot.put(url, good, format="json").status_code == 403
    # hostile or wrong bodies: 400 with field errors, in the caller's language
    api = agent.client()
    for body, field in [
        ({}, "body"),
        ({"body": "x" * 2001}, "body"),
        ({"body": "Привет {{ password }}"}, "body"),  # a placeholder nobody gives
        ({"body": "Привет {{ name"}, "body"),
        ({"body": ["a"]}, "body"),
    ]:
        response = api.put(url, body, format="json", HTTP_ACCEPT_LANGUAGE="ru")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["error"]["fields"]
    bad_language = api.put(f"/api/templates/{template.pk}/variants/xx-evil/", good, format="json")
    assert bad_language.status_code == 400
    assert "language" in bad_language.json()["error"]["fields"]
    assert api.delete(f"/api/templates/{template.pk}/variants/de/").status_code == 404


def test_daily_report_email_in_each_admins_language(
    org, make_client, mailoutbox, redis_client, django_capture_on_commit_callbacks
):
    from core.models import Membership
    from core.services import agent_create, membership_add
    from mailing.services import mailing_report_send_all, notification_send

    readers = (
        ("olga", "ru", "Europe/Moscow"),
        ("ana", "pt-br", ""),
        ("ann", "", ""),
        ("ted", "", ""),
    )
    for name, language, zone in readers:
        user = agent_create(username=name, password="pw", email=f"{name}@example.com")
        membership_add(organization=org, user=user, role=Membership.Role.ADMIN)
        AgentPreference.objects.create(user=user, language=language, time_zone=zone)
    with django_capture_on_commit_callbacks(execute=False):
        notification_send(organization=org, text="hi", client_ids=[make_client(org).pk])

    try:
        assert mailing_report_send_all() == 1
    finally:  # the once-a-day key would keep another test's report (same org id) from going
        redis_client.delete(*redis_client.keys("mailing:report:*"))

    by_recipients = {tuple(m.to): m for m in mailoutbox}
    assert set(by_recipients) == {
        ("olga@example.com",),
        ("ana@example.com",),
        ("ann@example.com", "ted@example.com"),  # one email per language
    }
    ru = by_recipients[("olga@example.com",)]
    assert ru.subject.startswith("[acme] Ежедневная статистика рассылок")
    assert ru.body.startswith("Статистика рассылок Acme \u0441 ")  # Russian "since"
    assert by_recipients[("ana@example.com",)].body.startswith("Estatísticas de disparos de Acme")
    english = by_recipients[("ann@example.com", "ted@example.com")].body
    assert english.startswith("Mailing statistics for Acme since ")
    # the time in each reader's saved zone (UTC when none is saved), the zone named
    since_utc = english.splitlines()[0].removeprefix("Mailing statistics for Acme since ")
    assert since_utc.endswith(" UTC")
    moscow = datetime.strptime(since_utc.removesuffix(" UTC"), "%Y-%m-%d %H:%M") + timedelta(
        hours=3
    )
    assert ru.body.splitlines()[0].endswith(f"{moscow:%Y-%m-%d %H:%M} Europe/Moscow")


@pytest.mark.parametrize(
    ("cookie", "zone"),
    [
        ("America/Sao_Paulo", "America/Sao_Paulo"),
        ("Europe/Moscow", "Europe/Moscow"),
        ("America%2FSao_Paulo", "America/Sao_Paulo"),  # encodeURIComponent's spelling
        ("", "UTC"),
        ("Mars/Olympus_Mons", "UTC"),  # unknown: the default, never an error
        ("../../etc/passwd", "UTC"),
    ],
)
def test_viewer_time_zone_from_the_browser(cookie, zone):
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse

    from core.i18n import AgentLanguageMiddleware

    seen = []

    def view(request):
        seen.append(timezone.get_current_timezone_name())
        return HttpResponse()

    request = RequestFactory().get("/")
    request.COOKIES["tz"] = cookie
    request.user = AnonymousUser()
    AgentLanguageMiddleware(view)(request)
    assert seen == [zone]
    assert timezone.get_current_timezone_name() == "UTC"  # nothing leaks past the request


@pytest.mark.skipif(not shutil.which("xgettext"), reason="GNU gettext's xgettext not installed")
def test_check_finds_marked_strings_missing_from_the_catalogs(tmp_path, monkeypatch, capsys):
    # given a small product: a marked Python string, template string and JS string, and
    # catalogs that translate only the Python one
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.py").write_text('gettext("Known")\ngettext("New in Python")\n')
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.html").write_text(
        '{% load i18n %}<p>{% translate "New in a template" %}</p>'
    )
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.js").write_text('t("New in JS"); tn("one", "many", 2);\n')
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text('gettext("A test string is not the product")\n')
    header = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    for language in check_i18n.LANGUAGES:
        folder = tmp_path / "locale" / language / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "django.po").write_text(header + 'msgid "Known"\nmsgstr "Известно"\n')
        (folder / "djangojs.po").write_text(header)
    monkeypatch.setattr(check_i18n, "ROOT", tmp_path)
    monkeypatch.setattr(check_i18n, "LOCALE", tmp_path / "locale")
    monkeypatch.setattr(check_i18n, "TEMPLATE_DIRS", [tmp_path / "templates"])
    # when / then
    assert check_i18n.check() == 1
    out = capsys.readouterr().out
    for text in ("New in Python", "New in a template", "New in JS", "'one'"):
        assert out.count(repr(text) if text != "'one'" else text) == 2, (text, out)  # ru, pt_BR
    assert "Known" not in out and "A test string" not in out


def test_admin_in_russian(staff, org):
    from mailing.services import mailing_create

    now = timezone.now()
    mailing_create(organization=org, text="hi", start_at=now, end_at=now + timedelta(hours=1))
    # the admin's own strings are Django's; the sections and actions are ours (model and
    # field names: tests/core/test_admin_i18n.py)
    index = staff.get("/admin/", headers={"accept-language": "ru"}).content.decode()
    assert "Рассылки" in index and "Эскалация" in index and "Платформа" in index
    mailings = staff.get("/admin/mailing/mailing/", headers={"accept-language": "ru"})
    assert "Отменить выбранные рассылки" in mailings.content.decode()


def test_email_variant_subject_text_and_html_per_client(org, make_client, redis_client):
    from mailing.models import MailingMessage
    from mailing.services import mailing_create, mailing_start, template_create
    from mailing.services.variants import template_variant_save

    template = template_create(
        organization=org,
        title="Welcome",
        code="welcome",
        transport="email",
        subject="Welcome, {{ name }}",
        body="Hello {{ name }}",
        html_body="<p>Hello <b>{{ name }}</b></p>",
    )
    template_variant_save(
        template=template,
        language="pt-br",
        subject="Bem-vindo, {{ name }}",
        body="Olá {{ name }}",
        html_body="<p>Olá <b>{{ name }}</b></p>",
    )
    ana = make_client(org, name="Ana <3", email="ana@example.com", language="pt-br")
    bob = make_client(org, name="Bob", email="bob@example.com", language="ru")  # no ru variant
    now = timezone.now()
    mailing = mailing_create(
        organization=org, template=template, start_at=now, end_at=now + timedelta(hours=1)
    )
    mailing_start(mailing_id=mailing.pk)
    rows = {
        m.client_id: (m.subject, m.delivery.text, m.html)
        for m in MailingMessage.objects.filter(mailing=mailing).select_related("delivery")
    }
    assert rows[ana.pk] == ("Bem-vindo, Ana <3", "Olá Ana <3", "<p>Olá <b>Ana &lt;3</b></p>")
    assert rows[bob.pk] == ("Welcome, Bob", "Hello Bob", "<p>Hello <b>Bob</b></p>")


def test_admin_edits_a_templates_variants_through_the_services(staff, org):
    from mailing.models import TemplateVariant
    from mailing.services import template_create

    template = template_create(organization=org, title="Order", code="order", body="Hi {{ name }}")
    url = f"/admin/mailing/template/{template.pk}/change/"
    assert "variants-TOTAL_FORMS" in staff.get(url).content.decode()
    form = {
        "title": "Order",
        "code": "order",
        "transport": "sms",
        "subject": "",
        "body": "Hi {{ name }}",
        "html_body": "",
        "variables": "[]",
        "variants-TOTAL_FORMS": "1",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-language": "pt_BR",
        "variants-0-subject": "",
        "variants-0-body": "Oi {{ name }}",
        "variants-0-html_body": "",
    }
    assert staff.post(url, form).status_code == 302
    assert list(TemplateVariant.objects.values_list("language", "body")) == [
        ("pt-br", "Oi {{ name }}")
    ]
    # a variant the service refuses (a placeholder nobody gives) is a form error, not a 500
    bad = {**form, "variants-0-language": "ru", "variants-0-body": "Привет {{ password }}"}
    refused = staff.post(url, bad)
    assert refused.status_code == 200 and "password" in refused.content.decode()
    assert TemplateVariant.objects.count() == 1
