"""The widget's public answers in the OpenAPI schema: each operation names a component,
and real answers validate against it (no key missing, none extra), so the hand-built
dicts (widget/representations.py) and their serializers cannot drift apart."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import HelpDesk

pytestmark = pytest.mark.django_db

WIDGET = "/widget/api/{token}/"


@pytest.fixture
def schema(agent: Any) -> dict[str, Any]:
    response = agent.client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _strict(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: `nullable` as a null type, and no undeclared key."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _strict(v) for k, v in node.items()}
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    elif node.get("type") == "object" and "properties" in node:
        node.setdefault("additionalProperties", False)
    return node


def _response_schema(schema: dict[str, Any], path: str, method: str, code: int) -> Any:
    operation = schema["paths"][WIDGET + path][method]
    body = operation["responses"][str(code)]["content"]["application/json"]["schema"]
    assert set(body) == {"$ref"}, f"{path} {code}: not a named component: {body}"
    name = body["$ref"].rsplit("/", 1)[-1]
    assert name.startswith("Widget"), name
    return {
        "$ref": body["$ref"],
        "components": _strict(copy.deepcopy(schema["components"])),
    }


def _check(schema: dict[str, Any], path: str, method: str, response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.content
    answer: dict[str, Any] = response.json()
    jsonschema.validate(answer, _response_schema(schema, path, method, response.status_code))
    return answer


def test_every_widget_answer_matches_its_schema_component(
    schema, widget, agent, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    paths = {p for p in schema["paths"] if p.startswith(WIDGET)}
    assert {p.removeprefix(WIDGET) for p in paths} == {
        "config/",
        "strings/",
        "start/",
        "messages/",
        "typing/",
        "read/",
        "rating/",
    }

    # given a visitor who starts (201), writes, attaches, and gets a reply
    _check(schema, "config/", "get", widget.api.get(widget.url("config")))
    strings = _check(schema, "strings/", "get", widget.api.get(widget.url("strings")))
    assert strings["language"] == "en"  # English: the texts as written, no entries
    _check(schema, "start/", "post", widget.start(page_url="https://shop.example/"))
    sent = _check(schema, "messages/", "post", widget.post("messages", {"text": "hi"}))
    attached = widget.post(
        "messages",
        {"text": "", "file": SimpleUploadedFile("a.png", b"\x89PNG....", "image/png")},
        format="multipart",
    )
    assert _check(schema, "messages/", "post", attached)["file"]
    desk = sent["help_desk"]
    api = agent.client()
    assert (
        api.post("/api/send-message/", {"help_desk": desk, "message": "hello"}).status_code == 201
    )
    assert api.post(f"/api/help-desks/{desk}/read/").status_code == 200

    # when it resumes (200: a conversation, an agent's message, a seen mark) and reads
    resumed = _check(schema, "start/", "post", widget.start())
    assert resumed["conversation"] and resumed["seen"] == attached.json()["uuid"]
    assert {m["from"] for m in resumed["messages"]} == {"visitor", "agent"}
    assert _check(schema, "read/", "post", widget.post("read")) == {"read": 1}

    # and rates the resolved conversation
    HelpDesk.objects.filter(uuid=desk).update(status="resolved")
    _check(schema, "rating/", "post", widget.post("rating", {"score": 5}))

    # then the check itself can fail: an extra key, or a missing one, is refused
    strict = _response_schema(schema, "read/", "post", 200)
    for wrong in ({"read": 1, "agent": 3}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, strict)
