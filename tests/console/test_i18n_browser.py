"""The login page and the console in English, Russian and Brazilian Portuguese, in a real
browser (issue 16): chosen by the browser's language (Accept-Language, which Playwright's
`locale` sets) and by the agent's saved preference, which wins over the browser's.
Screenshots: tests/artifacts/i18n-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("compiled_catalogs")]

SHARED_WORKER = False  # nothing here sends messages

# What each language shows: the login form's labels and button (server-rendered), the
# console's tab (server-rendered) and its connection state (written by the JavaScript
# through the /jsi18n/ catalog).
SHOWN = {
    "en": {"user": "Username", "password": "Password", "login": "Log in", "tab": "Inbox",
           "live": "Live", "day": "January 15"},
    "ru": {"user": "Имя пользователя", "password": "Пароль", "login": "Войти",
           "tab": "Входящие", "live": "\u0412 сети", "day": "15 января"},
    "pt-br": {"user": "Usuário", "password": "Senha", "login": "Entrar",
              "tab": "Caixa de entrada", "live": "Ao vivo", "day": "15 de janeiro"},
}  # fmt: skip
BROWSER_LOCALE = {"en": "en-US", "ru": "ru-RU", "pt-br": "pt-BR"}


@pytest.fixture
def conversation(agent: Any) -> Any:
    """A client's message, so the inbox shows a row with its (Intl-formatted) time."""
    from chat.services import message_receive

    return message_receive(
        organization=agent.organization, phone="79160000001", text="Hello! Olá!", name="Olga"
    )


@pytest.fixture
def browser_in(browser: Any, web: Any) -> Iterator[Any]:
    """Factory: a page in a fresh context whose browser speaks `locale`."""
    contexts: list[Any] = []

    def _new(locale: str) -> Any:
        context = browser.new_context(
            base_url=web.url, locale=locale, viewport={"width": 1280, "height": 800}
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield _new
    for context in contexts:
        context.close()


def _log_in(page: Any, username: str, shown: dict[str, str]) -> None:
    page.get_by_label(shown["user"]).fill(username)
    page.get_by_label(shown["password"]).fill("pw-" + username)
    page.get_by_role("button", name=shown["login"]).click()
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")


def _expect_console_in(page: Any, language: str) -> None:
    shown = SHOWN[language]
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator(".tab-button[data-tab=chat]")).to_contain_text(shown["tab"])
    expect(page.locator("#conn-status")).to_have_text(shown["live"])
    # dates formatted with Intl for the page's language, as the console's are (dom.js)
    day = page.evaluate(
        "new Intl.DateTimeFormat(document.documentElement.lang,"
        " {month: 'long', day: 'numeric', timeZone: 'UTC'}).format(Date.UTC(2026, 0, 15))"
    )
    assert day == shown["day"]


@pytest.mark.parametrize("language", ["en", "ru", "pt-br"])
def test_login_and_console_follow_the_browsers_language(
    agent: Any, conversation: Any, browser_in: Any, language: str
) -> None:
    page = browser_in(BROWSER_LOCALE[language])
    page.goto("/")
    # the login page, in the browser's language
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.get_by_role("button", name=SHOWN[language]["login"])).to_be_visible()
    screenshot(page, f"i18n-login-{language}.png")
    # a wrong password's message too
    if language != "en":
        page.get_by_label(SHOWN[language]["user"]).fill("alice")
        page.get_by_label(SHOWN[language]["password"]).fill("wrong")
        page.get_by_role("button", name=SHOWN[language]["login"]).click()
        expect(page.locator(".form-error")).not_to_contain_text("didn't match")
    # the console, after logging in with the translated form
    _log_in(page, "alice", SHOWN[language])
    _expect_console_in(page, language)
    expect(page.locator("#inbox-list")).to_contain_text("Olga")
    screenshot(page, f"i18n-console-{language}.png")
    assert page.errors == []


def test_the_saved_preference_wins_over_the_browser_and_switches(
    agent: Any, browser_in: Any
) -> None:
    from core.models import AgentPreference

    # given an agent who chose Russian, in a Brazilian browser
    AgentPreference.objects.create(user=agent.user, language="ru")
    page = browser_in("pt-BR")
    page.goto("/")
    _log_in(page, "alice", SHOWN["pt-br"])  # anonymous: the login page follows the browser
    # then the console is in Russian
    _expect_console_in(page, "ru")
    screenshot(page, "i18n-console-preference-ru.png")
    # when the agent picks Portuguese in the console's settings, the page reloads in it
    page.locator("#prefs summary").click()
    expect(page.locator("#pref-language")).to_have_value("ru")
    page.locator("#pref-language").select_option("pt-br")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    expect(page.locator("#conn-status")).to_have_attribute("data-state", "live")
    _expect_console_in(page, "pt-br")
    assert AgentPreference.objects.get(user=agent.user).language == "pt-br"
    # the viewer's time zone reaches the server (it renders the admin's times in it)
    assert "tz=" in page.evaluate("document.cookie")
    # and back to following the browser (no saved language) in an English browser
    AgentPreference.objects.filter(user=agent.user).update(language="")
    english = browser_in("en-US")
    english.goto("/")
    _log_in(english, "alice", SHOWN["en"])
    _expect_console_in(english, "en")
    assert page.errors == [] and english.errors == []
