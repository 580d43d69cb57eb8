"""One HTTP policy layer: one pagination for every list, a schema for every object.

Lists come from `core.api.ListView` with `core.pagination.LinkHeaderCursorPagination`
(a page is the seed's plain array; the next page is in the `Link` header). Every REST
object, incidents and assistance requests included, is a serializer with a component
in the OpenAPI schema: no operation answers a bare, property-less object.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.urls import resolve
from rest_framework.pagination import BasePagination

from core.api import ListView
from core.pagination import LinkHeaderCursorPagination
from core.services import api_key_create

pytestmark = pytest.mark.django_db

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SAMPLES = {"uuid": str(uuid.uuid4()), "pk": "987654", "id": "987654", "token": "x"}


@pytest.fixture
def schema(agent: Any) -> dict[str, Any]:
    response = agent.client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _view(path: str) -> type:
    return resolve(_PLACEHOLDER.sub(lambda m: _SAMPLES.get(m[1], "x"), path)).func.cls  # type: ignore[attr-defined]


def _ok(operation: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """The success body's schema, a top-level $ref (a page: `Paginated...List`) resolved."""
    for code in ("200", "201", "202"):
        content = operation.get("responses", {}).get(code, {}).get("content", {})
        if "application/json" in content:
            body = content["application/json"]["schema"]
            if "$ref" in body and body["$ref"].rsplit("/", 1)[-1].startswith("Paginated"):
                return schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            return body
    return None


def _list_operations(schema: dict[str, Any]) -> list[tuple[str, type]]:
    return [
        (path, _view(path))
        for path, operations in schema["paths"].items()
        if (body := _ok(operations.get("get", {}), schema)) is not None
        and body.get("type") == "array"
    ]


def test_every_list_endpoint_is_a_list_view_with_the_one_pagination(schema):
    lists = _list_operations(schema)
    assert len(lists) >= 12  # the walk found the lists (help desks ... organizations)
    wrong = [
        f"{path} {cls.__module__}.{cls.__qualname__}"
        for path, cls in lists
        if not issubclass(cls, ListView) or cls.pagination_class is not LinkHeaderCursorPagination
    ]
    assert wrong == []

    # and no second pagination class hides in the apps
    def subclasses(cls: type) -> set[type]:
        return {s for c in cls.__subclasses__() for s in {c, *subclasses(c)}}

    ours = {
        f"{c.__module__}.{c.__qualname__}"
        for c in subclasses(BasePagination)
        if c.__module__.split(".")[0] in {"core", "chat", "mailing", "escalation"}
    }
    assert ours == {"core.pagination.LinkHeaderCursorPagination"}


def test_every_list_endpoint_pages_with_a_link_header(agent, org, make_client):
    # given two of everything these lists show
    api = agent.client()
    for n, slug in enumerate(("first", "second")):
        assert api.post("/api/teams/", {"organization": "acme", "slug": slug}).status_code == 201
        topic = {"organization": "acme", "name": slug}
        assert api.post("/api/assistance/topics/", topic, format="json").status_code == 201
        make_client(org, phone=f"7916123456{n}")
    # when each is asked for pages of one, then it answers a one-item array and a next link
    for path in ("/api/teams/", "/api/assistance/topics/", "/api/clients/"):
        response = api.get(path, {"organization": "acme", "page_size": 1})
        assert response.status_code == 200, path
        assert isinstance(response.json(), list) and len(response.json()) == 1, path
        assert 'rel="next"' in response.headers.get("Link", ""), path


def test_an_unknown_status_filter_is_a_field_error_and_a_foreign_organization_404(agent, make_org):
    make_org("globex")
    api = agent.client()
    for path in ("/api/incidents/", "/api/assistance/"):
        response = api.get(path, {"organization": "acme", "status": "nope"})
        assert response.status_code == 400 and "status" in response.json()["error"]["fields"]
        assert api.get(path, {"organization": "globex"}).status_code == 404


def test_a_create_without_organization_is_a_field_error_for_an_agent(agent):
    api = agent.client()
    for path, body in (
        ("/api/teams/", {"slug": "t"}),
        ("/api/templates/", {"title": "t", "code": "t", "body": "x"}),
        ("/api/clients/", {"phone": "79161234567", "name": "Ann"}),
    ):
        response = api.post(path, body, format="json")
        assert response.status_code == 400, (path, response.content)
        assert "organization" in response.json()["error"]["fields"], path


def test_an_integration_key_acts_in_its_own_organization_only(org, make_org):
    # given an integration key of acme (with every scope)
    make_org("globex")
    _, raw = api_key_create(name="bot", organization=org, scopes=list(_all_scopes()))
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    # then it needs no organization, and its writes land in its own whatever the body says
    assert api.post("/api/teams/", {"slug": "ops"}, format="json").status_code == 201
    moved = api.post("/api/teams/", {"slug": "x", "organization": "globex"}, format="json")
    assert moved.status_code == 201 and moved.json()["organization"] == "acme"
    # but filtering by another organization is the outsider's 404
    assert api.get("/api/teams/", {"organization": "globex"}).status_code == 404
    # and it is not an agent
    refused = api.post(f"/api/incidents/{uuid.uuid4()}/acknowledge/")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_a_member_who_is_not_admin_may_read_but_not_configure(org, make_agent):
    member = make_agent("bob", org, role="agent").client()
    assert member.get("/api/teams/", {"organization": "acme"}).status_code == 200
    refused = member.post("/api/teams/", {"organization": "acme", "slug": "t"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def _all_scopes() -> tuple[str, ...]:
    from core.scopes import ALL

    return ALL


def _bare(node: Any, components: dict[str, Any], seen: set[str]) -> bool:
    """True when `node` is (or holds) an object schema that names no property."""
    if not isinstance(node, dict):
        return False
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return False
        return _bare(components[name], components, seen | {name})
    if (
        node.get("type") == "object"
        and not node.get("properties")
        and "additionalProperties" not in node
    ):
        return True
    parts = [node.get("items"), *node.get("allOf", []), *node.get("oneOf", [])]
    return any(_bare(p, components, seen) for p in parts if p is not None)


def test_incidents_and_assistance_requests_have_schema_components(schema):
    components = schema["components"]["schemas"]
    for name in ("Incident", "IncidentDetail", "AssistanceRequest", "AssistanceCreated"):
        assert name in components, name
        assert components[name]["properties"], name
    assert "steps" in components["IncidentDetail"]["properties"]
    paths = schema["paths"]
    assert _ok(paths["/api/incidents/"]["get"], schema)["items"]["$ref"].endswith("/Incident")
    detail = _ok(paths["/api/incidents/{uuid}/"]["get"], schema)
    assert detail["$ref"].endswith("/IncidentDetail")
    requests = _ok(paths["/api/assistance/"]["get"], schema)
    assert requests["items"]["$ref"].endswith("/AssistanceRequest")
    assert _ok(paths["/api/triggers/"]["post"], schema)["$ref"].endswith("/TriggersAccepted")


def test_no_operation_answers_a_bare_object(schema):
    components = schema["components"]["schemas"]
    bare = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if _bare(_ok(operation, schema), components, set())
    ]
    assert bare == []


def test_the_event_payload_is_the_rest_object(
    org, agent, make_client, django_capture_on_commit_callbacks
):
    # given an incident and an assistance request with their optional parts filled in
    import json
    from datetime import timedelta

    from django.utils import timezone

    from chat.assistance import assistance_request_accept
    from chat.models import AssistanceRequest, AssistanceTopic
    from core.events import event_log_open, replay_since
    from escalation.incidents import incident_acknowledge
    from escalation.models import Incident, Rule

    now = timezone.now()
    rule = Rule.objects.create(organization=org, code="login", triggers=[["api", 503]])
    incident = Incident.objects.create(
        organization=org,
        rule=rule,
        rule_snapshot={"code": "login", "triggers": [["api", 503]]},
        opened_at=now,
        last_occurrence_at=now + timedelta(seconds=1),
    )
    topic = AssistanceTopic.objects.create(organization=org, name="sales")
    request = AssistanceRequest.objects.create(
        organization=org, topic=topic, client=make_client(org), assignee=agent.user
    )
    before = event_log_open(organization_id=org.pk)
    # when the services change them (events published after commit)
    with django_capture_on_commit_callbacks(execute=True):
        incident_acknowledge(incident=incident, user=agent.user)
        assistance_request_accept(request=request, user=agent.user)
    replay = replay_since(organization_id=org.pk, last_event_id=before)
    events = {}
    for _, frame in replay.frames:
        parsed = json.loads(frame)
        events[parsed["type"]] = json.loads(parsed["data"])
    # then each event's payload is exactly what the REST API answers for the object
    api = agent.client()
    incident_rest = api.get(f"/api/incidents/{incident.uuid}/").json()
    incident_rest.pop("steps", None)
    assert events["incident_acknowledged"] == incident_rest
    requests = api.get("/api/assistance/", {"organization": org.slug}).json()
    [request_rest] = [r for r in requests if r["id"] == str(request.uuid)]
    assert events["assistance_accepted"] == request_rest
