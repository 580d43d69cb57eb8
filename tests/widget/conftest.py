"""Widget fixtures: an inbox on the `acme` organization and a public-API caller."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

ORIGIN = "https://shop.example"


@pytest.fixture(autouse=True)
def _generous_widget_rates(settings: Any) -> None:
    # The limits' own test sets its own; the others must not trip over each other's
    # counters (one client address for every in-process request).
    settings.WIDGET_IP_RATE = "1000000/min"
    settings.WIDGET_VISITOR_RATE = "1000000/min"


@pytest.fixture
def inbox(org: Any) -> Any:
    from widget.inboxes import web_inbox_create

    return web_inbox_create(
        organization=org, name="Shop", allowed_origins=[ORIGIN], greeting="Hi there"
    )


class Widget:
    """The widget's side of the public API, in process (as a page on `origin`)."""

    def __init__(self, inbox: Any, origin: str = ORIGIN) -> None:
        self.inbox = inbox
        self.api = APIClient(HTTP_ORIGIN=origin)
        self.token = ""

    def url(self, what: str) -> str:
        return f"/widget/api/{self.inbox.token}/{what}/"

    def start(self, **body: Any) -> Any:
        if self.token and "token" not in body:
            body["token"] = self.token
        response = self.api.post(self.url("start"), body, format="json")
        if response.status_code in (200, 201):
            self.token = response.json()["visitor_token"]
        return response

    def post(self, what: str, body: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("format", "json")
        return self.api.post(self.url(what), body or {}, HTTP_X_VISITOR_TOKEN=self.token, **kwargs)


@pytest.fixture
def widget(inbox: Any) -> Widget:
    return Widget(inbox)
