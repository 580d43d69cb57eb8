"""The widget in the visitor's language, in a real browser on a customer's page (issue 16):
a Russian browser (`locale="ru-RU"`, which sets Accept-Language and navigator.language)
gets Russian whatever the inbox's default; a browser in a language the platform does not
speak (German) gets the inbox's default (Brazilian Portuguese); an English one, English.
The texts, the pre-chat form, the server's default away message and the public API's
refusal of a file type all follow; the customer's page gets no gettext global; a site
not allowed gets no strings. Screenshots:
tests/artifacts/widget-i18n-*.png."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import SAFE, browser, screenshot  # noqa: F401 (module fixture)
from tests.widget.test_browser import host_site  # noqa: F401 (the customer's site)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("compiled_catalogs")]

# What each visitor should see, by the browser's locale.
SHOWN = {
    "ru-RU": {
        "language": "ru", "open": "Открыть чат", "close": "Закрыть чат",
        "placeholder": "Напишите сообщение…", "send": "Отправить",
        "away": "Сейчас нас нет на месте: оставьте сообщение, и мы вам ответим.",
        "phone": "Телефон",
        "invalid": "Некорректные данные.",
    },
    "de-DE": {  # not spoken: the inbox's default
        "language": "pt-br", "open": "Abrir o chat", "close": "Fechar o chat",
        "placeholder": "Escreva uma mensagem…", "send": "Enviar",
        "away": "Estamos ausentes: deixe uma mensagem e retornaremos.",
        "phone": "Telefone",
        "invalid": "Dados inválidos.",
    },
    "en-US": {
        "language": "en", "open": "Open chat", "close": "Close chat",
        "placeholder": "Write a message…", "send": "Send",
        "away": "We're away: leave a message and we'll get back to you.",
        "phone": "Phone",
        "invalid": "Invalid input.",
    },
}  # fmt: skip


def _page(web_url: str, token: str) -> bytes:
    return (
        "<!doctype html><html lang='en'><head><title>Shop</title></head><body><h1>Shop</h1>"
        f'<script src="{web_url}/static/widget/widget.js" data-inbox="{token}"></script>'
        "</body></html>"
    ).encode()


@pytest.fixture
def shop(org: Any, start_web: Any, host_site: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """A Portuguese-default inbox the customer's site may embed (asking for a phone,
    optional), and one it may not; nobody is available, so the widget shows the (default)
    away message."""
    from widget.inboxes import web_inbox_create

    web = start_web(**SAFE, WIDGET_IP_RATE="100000/min", WIDGET_VISITOR_RATE="100000/min")
    site = f"http://127.0.0.1:{host_site['port']}"
    allowed = web_inbox_create(
        organization=org,
        name="Loja",
        allowed_origins=[site],
        language="pt-br",
        prechat_phone="optional",
    )
    other = web_inbox_create(
        organization=org, name="Other", allowed_origins=["https://other.example"]
    )
    return {
        "site": site,
        "pages": host_site["page"],
        "allowed": _page(web.url, allowed.token),
        "refused": _page(web.url, other.token),
    }


@pytest.mark.parametrize("locale", list(SHOWN))
def test_widget_speaks_the_browser_language_else_the_inbox_default(
    browser,  # noqa: F811
    shop,
    locale,
):
    shown = SHOWN[locale]
    context = browser.new_context(locale=locale, viewport={"width": 390, "height": 700})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        shop["pages"]["html"] = shop["allowed"]
        page.goto(shop["site"] + "/")
        page.get_by_role("button", name=shown["open"], exact=True).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(shown["away"]).wait_for()  # the server's default, translated
        assert page.locator("[data-chat-widget]").get_attribute("lang") == shown["language"]
        assert dialog.get_by_role("button", name=shown["close"], exact=True).count() == 1
        dialog.get_by_label(shown["phone"], exact=True).wait_for()  # the pre-chat form
        box = dialog.get_by_placeholder(shown["placeholder"], exact=True)
        # the public API's refusal (a file type not allowed), in the visitor's language
        dialog.locator("input[type=file]").set_input_files(
            files=[{"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}]
        )
        box.fill("my file")
        dialog.get_by_role("button", name=shown["send"], exact=True).click()
        dialog.get_by_text(shown["invalid"], exact=True).wait_for()
        dialog.locator("input[type=file]").set_input_files(files=[])
        box.fill("Olá / Привет / Hello")
        dialog.get_by_role("button", name=shown["send"], exact=True).click()
        dialog.locator("li.msg.visitor").get_by_text("Olá / Привет / Hello").wait_for()
        # the page's own globals are untouched: no gettext, no django catalog of ours
        assert page.evaluate("typeof window.gettext + typeof window.django") == (
            "undefinedundefined"
        )
        screenshot(page, f"widget-i18n-{shown['language']}.png")

        # a site not allowed gets none of the widget's strings: English as written
        shop["pages"]["html"] = shop["refused"]
        page.goto(shop["site"] + "/")
        page.get_by_role("button", name="Open chat", exact=True).wait_for()
        assert page.locator("[data-chat-widget]").get_attribute("lang") == "en"
        assert errors == []
    finally:
        context.close()
