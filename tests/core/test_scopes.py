"""API key scopes (core/permissions.py, core/scopes.py): every HTTP endpoint, the trigger
fast path, `create_api_key --scopes` and the admin's scope field.

The endpoint tests walk the URLconf: a view added without a declared scope fails here,
not in production (where keys would be refused, fail closed).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from chat.models import AssistanceTopic, Client, HelpDesk, Message
from core import scopes
from core.models import ApiKey
from core.permissions import ScopePermission
from core.services import api_key_create
from escalation.models import Rule, Team, TriggerBatch
from mailing.models import Mailing, Template
from tests.escalation.conftest import SEED

pytestmark = pytest.mark.django_db

# Views that replace the default permission classes on purpose, with the reason. Any
# other view must use ScopePermission (the default) and declare every method.
OWN_PERMISSIONS = {
    # the OpenAPI schema and Swagger UI: public documentation, no data
    "drf_spectacular.views.SpectacularAPIView",
    "drf_spectacular.views.SpectacularSwaggerView",
    "drf_spectacular.views.SpectacularSwaggerSplitView",
    # a signed, expiring file link: the signature is the credential (chat/files.py)
    "chat.files_api.FileLinkView",
    # the website widget's public API: the inbox's public token, the Origin allow-list and
    # the visitor's signed token are the credentials (widget/public_api.py, docs/widget.md)
    "widget.public_api.ConfigView",
    "widget.public_api.StartView",
    "widget.public_api.MessageView",
    "widget.public_api.TypingView",
    "widget.public_api.ReadView",
    "widget.public_api.RatingView",
    "widget.public_api.StringsView",
}
_CONVERTERS = {"uuid": lambda: str(uuid.uuid4()), "int": lambda: "987654", "str": lambda: "x"}
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _endpoints() -> list[tuple[str, type]]:
    """(concrete URL, view class) of every DRF view in the root URLconf."""
    found: list[tuple[str, type]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                cls = getattr(entry.callback, "cls", None)
                if cls is None or not issubclass(cls, APIView):
                    continue  # plain Django views: API keys authenticate nothing there
                url = "/" + _PARAM.sub(lambda m: _CONVERTERS[m[1] or "str"](), route)
                found.append((url.replace("^", "").replace("$", ""), cls))

    walk(get_resolver().url_patterns, "")
    return found


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _methods(cls: type) -> list[str]:
    """The methods a view implements (OPTIONS and HEAD follow from them)."""
    return [
        m.upper() for m in cls.http_method_names if m not in ("options", "head") and hasattr(cls, m)
    ]  # type: ignore[attr-defined]


def _scoped_cases() -> list[tuple[str, str, str]]:
    cases = []
    for url, cls in _endpoints():
        if _name(cls) in OWN_PERMISSIONS:
            continue
        for method in _methods(cls):
            cases.append((url, method, cls.required_scopes[method]))  # type: ignore[attr-defined]
    return cases


def _key(agent_user: Any, granted: list[str]) -> APIClient:
    _, raw = api_key_create(name="scoped", user=agent_user, scopes=granted)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def _integration(org: Any, granted: list[str] | None = None) -> APIClient:
    _, raw = api_key_create(name="bot", organization=org, scopes=granted)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def _call(api: APIClient, method: str, url: str) -> Any:
    return getattr(api, method.lower())(url, {}, format="json")


def _refused(response: Any, scope: str) -> bool:
    if response.status_code != 403:
        return False
    error = response.json()["error"]
    return error["code"] == "insufficient_scope" and f"'{scope}'" in error["message"]


# --- the URLconf: every endpoint declares a scope for every method -------------------------


def test_every_api_view_uses_the_scope_permission_and_declares_every_method():
    endpoints = _endpoints()
    assert len(endpoints) > 30  # the walk found the API (not an empty resolver)
    problems = []
    for url, cls in endpoints:
        if _name(cls) in OWN_PERMISSIONS:
            continue
        if ScopePermission not in cls.permission_classes:  # type: ignore[attr-defined]
            problems.append(f"{url} {_name(cls)}: permission_classes drop ScopePermission")
            continue
        declared = getattr(cls, "required_scopes", {})
        for method in _methods(cls):
            if declared.get(method) not in scopes.ALL:
                problems.append(f"{method} {url} {_name(cls)}: no scope declared")
        for method in declared:
            if method not in _methods(cls):
                problems.append(f"{url} {_name(cls)}: declares {method}, which it lacks")
    assert problems == []


def test_each_endpoint_refuses_a_key_without_its_scope_and_admits_one_with_it(org, make_agent):
    # given an organization admin (so the views' own role checks pass) and, per scope,
    # a key with only that scope and a key with every other one
    admin = make_agent("root", org, role="admin")
    only = {s: _key(admin.user, [s]) for s in scopes.ALL}
    without = {s: _key(admin.user, [o for o in scopes.ALL if o != s]) for s in scopes.ALL}
    cases = _scoped_cases()
    assert {scope for _, _, scope in cases} == set(scopes.ALL)

    wrong = []
    for url, method, scope in cases:
        # when a key lacks the scope, then a 403 naming it
        refused = _call(without[scope], method, url)
        if not _refused(refused, scope):
            wrong.append(f"{method} {url} without {scope!r}: {refused.status_code}")
        # when a key has only that scope, then the view answers (404, 400, 200...), not 403
        admitted = _call(only[scope], method, url)
        if admitted.status_code == 403:
            wrong.append(f"{method} {url} with only {scope!r}: 403 {admitted.content[:200]!r}")
    assert wrong == []


def test_head_follows_get_and_options_needs_read(org, make_agent):
    admin = make_agent("root", org)
    write_only = _key(admin.user, [scopes.AGENT])
    assert write_only.head("/api/help-desks/").status_code == 403  # (a HEAD has no body)
    assert _refused(write_only.options("/api/help-desks/"), scopes.READ)
    assert _key(admin.user, [scopes.READ]).head("/api/help-desks/").status_code == 200
    # a method the view lacks is still DRF's 405, not a scope refusal
    assert write_only.put("/api/help-desks/", {}, format="json").status_code == 405


# --- the permission class itself: fail closed, sessions unscoped ------------------------


class _Undeclared(APIView):
    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class _DeclaresPost(APIView):
    required_scopes = {"POST": scopes.ADMIN}

    def get(self, request: Any) -> Response:
        return Response({"ok": True})

    def post(self, request: Any) -> Response:
        return Response({"ok": True})


def _run(view: type, method: str, *, user: Any, key: ApiKey | None) -> Any:
    request = getattr(APIRequestFactory(), method)("/x/", {}, format="json")
    force_authenticate(request, user=user, token=key)
    response = view.as_view()(request)
    response.render()
    return response


def test_a_view_that_declares_no_scope_is_refused_to_keys_but_not_to_sessions(agent):
    key = ApiKey.objects.get(user=agent.user)
    assert set(key.scopes) == set(scopes.ALL)  # even a key with every scope
    refused = _run(_Undeclared, "get", user=agent.user, key=key)
    assert refused.status_code == 403
    assert json.loads(refused.content)["error"]["code"] == "insufficient_scope"
    # an undeclared method of a view that declares others: refused too
    assert _run(_DeclaresPost, "get", user=agent.user, key=key).status_code == 403
    assert _run(_DeclaresPost, "post", user=agent.user, key=key).status_code == 200
    # a session (no ApiKey in request.auth) is its user: not scope-limited
    assert _run(_Undeclared, "get", user=agent.user, key=None).status_code == 200


# --- a leaked integration key with the default scopes -------------------------------------


@pytest.fixture
def acme(org: Any, agent: Any, help_desk: Any) -> dict[str, Any]:
    message = Message.objects.create(
        help_desk=help_desk, message="secret", type="sent", status="sent"
    )
    topic = AssistanceTopic.objects.create(organization=org, name="sales")
    template = Template.objects.create(organization=org, title="t", code="t", body="hello")
    return {"help_desk": help_desk, "message": message, "topic": topic, "template": template}


def test_a_default_integration_key_cannot_read_edit_delete_send_or_configure(org, acme):
    bot = _integration(org)
    assert set(ApiKey.objects.get(organization=org).scopes) == set(scopes.INTEGRATION_DEFAULT)
    desk, client = acme["help_desk"], acme["help_desk"].client
    attempts = [
        ("get", f"/api/help-desks/{desk.uuid}/history/", None, "read"),
        ("get", "/api/help-desks/", None, "read"),
        ("get", f"/api/clients/{client.uuid}/", None, "read"),
        ("get", "/api/organizations/", None, "read"),
        ("patch", f"/api/help-desks/{desk.uuid}/", {"status": "closed"}, "agent"),
        ("delete", f"/api/help-desks/{desk.uuid}/", None, "agent"),
        ("delete", f"/api/clients/{client.uuid}/", None, "agent"),
        ("post", f"/api/messages/{acme['message'].uuid}/retry/", None, "agent"),
        (
            "post",
            "/api/mailings/",
            {
                "name": "spam",
                "text": "buy now",
                "start_at": "2030-01-01T10:00:00Z",
                "end_at": "2030-01-02T10:00:00Z",
            },
            "admin",
        ),
        ("post", "/api/notifications/", {"text": "x", "tags": ["vip"]}, "admin"),
        ("post", "/api/templates/", {"name": "x", "text": "y"}, "admin"),
        ("post", "/api/assistance/topics/", {"name": "evil", "webhook_url": "http://x"}, "admin"),
        (
            "patch",
            f"/api/assistance/topics/{acme['topic'].pk}/",
            {"webhook_url": "http://attacker.example/hook"},
            "admin",
        ),
        ("post", "/api/teams/", {"slug": "evil"}, "admin"),
        ("post", "/api/escalation/rules/", {"code": "9", "triggers": []}, "admin"),
    ]
    for method, url, body, scope in attempts:
        response = getattr(bot, method)(url, body, format="json")
        assert _refused(response, scope), (method, url, response.status_code, response.content)
        assert b"secret" not in response.content
    # nothing changed
    desk.refresh_from_db()
    assert desk.status != "closed"
    assert Client.objects.filter(pk=client.pk).exists()
    assert HelpDesk.objects.filter(pk=desk.pk).exists()
    assert not Mailing.objects.exists()
    assert Template.objects.count() == 1
    assert list(AssistanceTopic.objects.values_list("name", "webhook_url")) == [("sales", "")]
    assert not Team.objects.exists() and not Rule.objects.exists()


def test_a_default_integration_key_still_does_its_job(org, acme):
    bot = _integration(org)
    inbound = bot.post(
        "/api/inbound-message/", {"phone": "79161112233", "message": "hi"}, format="json"
    )
    assert inbound.status_code == 201, inbound.content
    receipt = bot.post(
        f"/api/messages/{acme['message'].uuid}/receipts/", {"status": "delivered"}, format="json"
    )
    assert receipt.status_code == 200 and receipt.json()["applied"] is True, receipt.content
    assistance = bot.post("/assistance/", {"topic": "sales"}, format="json")
    assert assistance.status_code == 202, assistance.content
    assert bot.post("/api/triggers/", SEED, format="json").status_code == 202


def test_a_default_agent_key_reads_and_acts_but_does_not_post_as_an_integration(org, agent):
    # a real agent key's default (the `agent` fixture's key carries every scope)
    _, raw = api_key_create(name="cli", user=agent.user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert set(ApiKey.objects.get(name="cli").scopes) == set(scopes.AGENT_DEFAULT)
    assert api.get("/api/help-desks/?organization=acme").status_code == 200
    assert (
        api.post("/api/teams/", {"organization": "acme", "slug": "n1"}, format="json").status_code
        == 201
    )
    assert _refused(api.post("/api/triggers/?organization=acme", SEED, format="json"), "triggers")
    assert not TriggerBatch.objects.exists()


# --- the trigger fast path ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fast_path_leaves_a_key_without_triggers_to_django_direct_asgi(org):
    from core.asgi import http_app
    from escalation.fastpath import TriggerFastPath
    from tests.escalation.test_fastpath import _call as asgi_call

    reached_django: list[str] = []

    async def django(scope: Any, receive: Any, send: Any) -> None:
        reached_django.append(scope["path"])
        await http_app.app(scope, receive, send)

    fast = TriggerFastPath(django)
    try:
        _, without = api_key_create(name="bot", organization=org, scopes=[scopes.ASSISTANCE])
        _, with_it = api_key_create(name="monitoring", organization=org, scopes=[scopes.TRIGGERS])
        body = json.dumps(SEED).encode()
        # when a key without `triggers` posts, then Django answers 403 and records nothing
        status, answer = asyncio.run(asgi_call(fast, "/api/triggers/", body, without))
        assert (status, answer["error"]["code"]) == (403, "insufficient_scope")
        assert reached_django == ["/api/triggers/"]
        assert not TriggerBatch.objects.exists()
        # when a key with it posts, then the fast path itself answers 202
        status, _ = asyncio.run(asgi_call(fast, "/api/triggers/", body, with_it))
        assert status == 202 and reached_django == ["/api/triggers/"]
        assert TriggerBatch.objects.count() == 1
    finally:
        fast.committer.close()


@pytest.mark.django_db(transaction=True)
def test_fast_path_refuses_a_key_without_triggers_over_http(org, start_web):
    # given a real daphne (fast path on, as in production) and two integration keys
    _, without = api_key_create(name="bot", organization=org, scopes=[scopes.ASSISTANCE])
    _, with_it = api_key_create(name="monitoring", organization=org, scopes=[scopes.TRIGGERS])
    web = start_web(TRIGGER_FASTPATH="1")
    alert = {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"service": "login", "status": "503"}}],
    }
    for path, payload in (("/api/triggers/", SEED), ("/api/alertmanager/", alert)):
        # when the key without `triggers` posts, then 403 and nothing recorded
        refused = httpx.post(
            f"{web.url}{path}", json=payload, headers={"Authorization": f"Bearer {without}"}
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "insufficient_scope"
        assert "'triggers'" in refused.json()["error"]["message"]
    assert not TriggerBatch.objects.exists()
    accepted = httpx.post(
        f"{web.url}/api/triggers/", json=SEED, headers={"Authorization": f"Bearer {with_it}"}
    )
    assert accepted.status_code == 202, accepted.text
    assert TriggerBatch.objects.count() == 1


# --- create_api_key --scopes and the admin --------------------------------------------------


def _command(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_api_key_sets_and_prints_scopes(org, agent):
    lines = _command("--organization", "acme", "--name", "bot", "--scopes", "triggers, inbound")
    assert lines[0] == "scopes: inbound,triggers"
    key = ApiKey.objects.get(name="bot")
    assert key.scopes == ["inbound", "triggers"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {lines[-1]}")
    assert api.post("/api/triggers/", SEED, format="json").status_code == 202
    assert _refused(api.post("/assistance/", {"topic": "x"}, format="json"), "assistance")
    # defaults by kind when --scopes is not given
    assert (
        _command("--organization", "acme", "--name", "b2")[0]
        == "scopes: assistance,inbound,triggers"
    )
    assert _command("--user", "alice", "--name", "cli")[0] == "scopes: admin,agent,read"


@pytest.mark.parametrize("value", ["triggers,root", "everything", "", " , "])
def test_create_api_key_rejects_unknown_or_empty_scopes(org, value):
    with pytest.raises(CommandError, match="--scopes"):
        _command("--organization", "acme", "--scopes", value)
    assert not ApiKey.objects.exists()


def test_admin_edits_scopes_with_checkboxes_and_can_still_revoke(org, staff):
    api_key_create(name="bot", organization=org)
    key = ApiKey.objects.get(name="bot")
    url = f"/admin/core/apikey/{key.pk}/change/"
    page = staff.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for scope in scopes.ALL:
        assert f'type="checkbox" name="scopes" value="{scope}"' in html
    form = {
        "kind": "integration",
        "name": "bot",
        "organization": org.pk,
        "user": "",
        "revoked_at_0": "",
        "revoked_at_1": "",
    }
    # an unknown scope is refused by the form, nothing saved
    bad = staff.post(url, {**form, "scopes": ["triggers", "root"]})
    assert bad.status_code == 200 and "root" in bad.content.decode()
    key.refresh_from_db()
    assert key.scopes == sorted(scopes.INTEGRATION_DEFAULT)
    # checked boxes become the key's scopes
    saved = staff.post(url, {**form, "scopes": ["read", "triggers"]})
    assert saved.status_code == 302, saved.content[:500]
    key.refresh_from_db()
    assert key.scopes == ["read", "triggers"]
    # revoking (revoked_at) is still an edit of the same form
    revoked = staff.post(
        url, {**form, "scopes": ["read"], "revoked_at_0": "2026-01-01", "revoked_at_1": "10:00:00"}
    )
    assert revoked.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and key.scopes == ["read"]


def test_demo_keys_do_what_the_start_flow_prints(tmp_path, monkeypatch):
    # the README's `bash contrib/start.sh` runs demo_data: its agent key reads and sends,
    # its integration key posts triggers and assistance requests, and reads nothing
    from core.management.commands import demo_data

    monkeypatch.setattr(demo_data, "CREDENTIALS", tmp_path / "demo-credentials.json")
    out = io.StringIO()
    call_command("demo_data", stdout=out)
    printed = out.getvalue()
    agent_key = re.search(r"agent API key:\s+(\S+)\s+\(scopes: read, agent, admin\)", printed)
    bot_key = re.search(
        r"integration API key:\s+(\S+)\s+\(scopes: triggers, assistance, inbound\)", printed
    )
    assert agent_key and bot_key, printed
    agent, bot = APIClient(), APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_key[1]}")
    bot.credentials(HTTP_AUTHORIZATION=f"Bearer {bot_key[1]}")
    desks = agent.get("/api/help-desks/?organization=demo")
    assert desks.status_code == 200 and desks.json()
    sent = agent.post("/api/send-message/", {"help_desk": desks.json()[0]["uuid"], "message": "hi"})
    assert sent.status_code == 201, sent.content
    assert bot.post("/api/triggers/", SEED, format="json").status_code == 202
    assistance = bot.post("/assistance/", {"topic": "sales"}, format="json")  # escalation.demo
    assert assistance.status_code == 202, assistance.content
    assert _refused(bot.get("/api/help-desks/?organization=demo"), "read")


def test_the_openapi_schema_names_each_operations_scope(agent):
    schema = agent.client().get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    expected = {
        ("/api/triggers/", "post"): "triggers",
        ("/api/help-desks/{uuid}/history/", "get"): "read",
        ("/api/help-desks/{uuid}/", "patch"): "agent",
        ("/api/mailings/", "post"): "admin",
        ("/assistance/", "post"): "assistance",
        ("/api/inbound-message/", "post"): "inbound",
    }
    for (path, method), scope in expected.items():
        operation = paths[path][method]
        assert operation["x-api-key-scope"] == scope, (path, method)
        assert f"`{scope}` scope" in operation["description"]
    # every operation says so, but the signed file link's (its signature is the credential)
    # and the widget's public API (the inbox token and the visitor's signed token are)
    silent = [p for p, ops in paths.items() for op in ops.values() if "x-api-key-scope" not in op]
    assert [p for p in silent if not p.startswith("/widget/api/")] == ["/api/files/{token}/"]
