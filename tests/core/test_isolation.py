"""Isolation between organizations: a principal reaches only its own organizations' data.

The rule lives once in `core/access.py` (`organizations_for`) and every selector builds
on it. These tests plant nothing; they pin what a dropped organization filter, a
dropped membership condition or a removed guard for an unauthenticated principal
would leak (the planted bugs and the test that catches each are in docs/testing.md).
Each test also checks that the principal *does* see its own rows, so "empty" can never
pass because nothing was created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework.test import APIClient

from chat import assistance
from chat import selectors as chat_selectors
from chat.models import AssistanceRequest, AssistanceTopic, Message
from core.access import is_admin, organization_find_for_principal, organizations_for
from core.auth import IntegrationPrincipal
from core.errors import ApplicationError
from core.models import ApiKey, Membership, Team
from core.scope import organization_get_for_principal
from core.services import agent_create, api_key_create, membership_add
from escalation import selectors as escalation_selectors
from escalation.models import Incident, Rule
from mailing import selectors as mailing_selectors
from mailing.models import Mailing, Template

pytestmark = pytest.mark.django_db


@dataclass
class Tenant:
    """One organization with one row of every kind the selectors read."""

    org: Any
    client: Any
    help_desk: Any
    message: Message
    template: Template
    mailing: Mailing
    rule: Rule
    team: Team
    incident: Incident
    topic: AssistanceTopic
    request: AssistanceRequest


def _tenant(slug: str, make_client: Callable[..., Any], make_org: Callable[..., Any]) -> Tenant:
    from chat.services import help_desk_open

    org = make_org(slug)
    client = make_client(org)
    help_desk, _ = help_desk_open(client=client)
    now = timezone.now()
    team = Team.objects.create(organization=org, slug="ops", name="Ops")
    topic = AssistanceTopic.objects.create(organization=org, name="sales", team=team)
    rule = Rule.objects.create(organization=org, code="login", triggers=[])
    template = Template.objects.create(organization=org, title="Hi", code="hi", body="Hi")
    return Tenant(
        org=org,
        client=client,
        help_desk=help_desk,
        message=Message.objects.create(help_desk=help_desk, message="hello", type="client"),
        template=template,
        mailing=Mailing.objects.create(
            organization=org, start_at=now, end_at=now + timedelta(hours=1), text="x"
        ),
        rule=rule,
        team=team,
        incident=Incident.objects.create(
            organization=org, rule=rule, opened_at=now, last_occurrence_at=now
        ),
        topic=topic,
        request=AssistanceRequest.objects.create(organization=org, topic=topic),
    )


@pytest.fixture
def tenants(make_client: Any, make_org: Any) -> tuple[Tenant, Tenant]:
    return _tenant("acme", make_client, make_org), _tenant("globex", make_client, make_org)


@pytest.fixture
def alice(tenants: tuple[Tenant, Tenant]) -> Any:
    """An admin of acme only."""
    user = agent_create(username="alice", password=None)
    membership_add(organization=tenants[0].org, user=user, role="admin")
    return user


@pytest.fixture
def carol(tenants: tuple[Tenant, Tenant]) -> Any:
    """A member of both organizations."""
    user = agent_create(username="carol", password=None)
    for tenant in tenants:
        membership_add(organization=tenant.org, user=user, role="agent")
    return user


@pytest.fixture
def integration(tenants: tuple[Tenant, Tenant]) -> IntegrationPrincipal:
    """What `request.user` is for acme's integration (monitoring, bot) key."""
    key, _ = api_key_create(name="bot", organization=tenants[0].org)
    return IntegrationPrincipal(organization=tenants[0].org, api_key=key)


# (list selector, get selector, how the get names a row, which row of a tenant)
READS: list[tuple[str, Callable[..., Any], Callable[..., Any], str, str]] = [
    (
        "help_desk",
        chat_selectors.help_desk_list,
        chat_selectors.help_desk_get_for_principal,
        "uuid",
        "help_desk",
    ),
    (
        "client",
        chat_selectors.client_list,
        chat_selectors.client_get_for_principal,
        "uuid",
        "client",
    ),
    (
        "mailing",
        mailing_selectors.mailing_list,
        mailing_selectors.mailing_get_for_principal,
        "pk",
        "mailing",
    ),
    (
        "template",
        mailing_selectors.template_list,
        mailing_selectors.template_get_for_principal,
        "pk",
        "template",
    ),
    (
        "incident",
        escalation_selectors.incident_list,
        escalation_selectors.incident_get_for_principal,
        "uuid",
        "incident",
    ),
    (
        "rule",
        escalation_selectors.rule_list,
        escalation_selectors.rule_get_for_principal,
        "pk",
        "rule",
    ),
    (
        "team",
        escalation_selectors.team_list,
        escalation_selectors.team_get_for_principal,
        "pk",
        "team",
    ),
    (
        "assistance_request",
        assistance.assistance_request_list,
        assistance.assistance_request_get_for_principal,
        "uuid",
        "request",
    ),
    (
        "assistance_topic",
        assistance.assistance_topic_list,
        assistance.assistance_topic_get_for_principal,
        "pk",
        "topic",
    ),
]


def _principal(kind: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("alice" if kind == "member" else "integration")


@pytest.mark.parametrize("kind", ["member", "integration"])
def test_a_principal_of_one_organization_never_reads_another(
    request: pytest.FixtureRequest, tenants: tuple[Tenant, Tenant], kind: str
) -> None:
    principal = _principal(kind, request)
    for name, list_rows, get_row, key, attr in READS:
        mine, theirs = (getattr(t, attr) for t in tenants)
        # the list: its own row, not the other organization's
        assert list(list_rows(principal=principal)) == [mine], name
        # asking for the other organization by slug is empty, for its own is not
        assert list(list_rows(principal=principal, organization_slug="globex")) == [], name
        assert list(list_rows(principal=principal, organization_slug="acme")) == [mine], name
        # fetch-and-authorize: its own row, and a 404 (not a 403: nothing is revealed)
        # for the other organization's
        assert get_row(principal=principal, **{key: getattr(mine, key)}) == mine, name
        with pytest.raises(ApplicationError) as caught:
            get_row(principal=principal, **{key: getattr(theirs, key)})
        assert caught.value.status_code == 404, name


def test_a_member_of_two_organizations_gets_one_when_it_names_one(
    tenants: tuple[Tenant, Tenant], carol: Any
) -> None:
    for name, list_rows, _get, _key, attr in READS:
        acme_row, globex_row = (getattr(t, attr) for t in tenants)
        assert set(list_rows(principal=carol)) == {acme_row, globex_row}, name
        assert list(list_rows(principal=carol, organization_slug="acme")) == [acme_row], name
        assert list(list_rows(principal=carol, organization_slug="globex")) == [globex_row], name


@pytest.mark.parametrize("anonymous", [None, AnonymousUser()], ids=["none", "anonymous_user"])
def test_an_unauthenticated_principal_reads_nothing(
    tenants: tuple[Tenant, Tenant], alice: Any, anonymous: Any
) -> None:
    for name, list_rows, get_row, key, attr in READS:
        assert list(list_rows(principal=anonymous)) == [], name
        assert list(list_rows(principal=anonymous, organization_slug="acme")) == [], name
        for tenant in tenants:
            with pytest.raises(ApplicationError) as caught:
                get_row(principal=anonymous, **{key: getattr(getattr(tenant, attr), key)})
            assert caught.value.status_code == 404, name


def test_status_filters_keep_to_the_status_asked(
    tenants: tuple[Tenant, Tenant], alice: Any
) -> None:
    mine = tenants[0]
    assert list(escalation_selectors.incident_list(principal=alice, status="open")) == [
        mine.incident
    ]
    assert list(escalation_selectors.incident_list(principal=alice, status="resolved")) == []
    requests = assistance.assistance_request_list
    assert list(requests(principal=alice, status="received")) == [mine.request]
    assert list(requests(principal=alice, status="accepted")) == []


def test_organizations_for_each_kind_of_principal(
    tenants: tuple[Tenant, Tenant], alice: Any, carol: Any, integration: IntegrationPrincipal
) -> None:
    acme, globex = (t.org for t in tenants)
    assert list(organizations_for(alice)) == [acme]
    assert set(organizations_for(carol)) == {acme, globex}
    assert list(organizations_for(integration)) == [acme]
    assert list(organizations_for(None)) == []
    assert list(organizations_for(AnonymousUser())) == []


def test_a_user_whose_memberships_are_gone_reads_nothing(
    tenants: tuple[Tenant, Tenant], alice: Any
) -> None:
    Membership.objects.filter(user=alice).delete()
    assert list(organizations_for(alice)) == []
    assert list(chat_selectors.help_desk_list(principal=alice)) == []


def test_organization_get_for_principal_is_404_for_a_non_member_and_for_anonymous(
    tenants: tuple[Tenant, Tenant], alice: Any, integration: IntegrationPrincipal
) -> None:
    acme = tenants[0].org
    for principal in (alice, integration):
        assert organization_get_for_principal(principal=principal, slug="acme") == acme
        for slug in ("globex", "nope"):
            with pytest.raises(ApplicationError) as caught:
                organization_get_for_principal(principal=principal, slug=slug)
            assert caught.value.status_code == 404
    for anonymous in (None, AnonymousUser()):
        with pytest.raises(ApplicationError):
            organization_get_for_principal(principal=anonymous, slug="acme")


def test_message_get_for_principal_is_404_across_organizations(
    tenants: tuple[Tenant, Tenant], alice: Any, integration: IntegrationPrincipal
) -> None:
    mine, theirs = (t.message for t in tenants)
    for principal in (alice, integration):
        assert chat_selectors.message_get_for_principal(principal=principal, uuid=mine.uuid) == mine
        with pytest.raises(ApplicationError) as caught:
            chat_selectors.message_get_for_principal(principal=principal, uuid=theirs.uuid)
        assert caught.value.status_code == 404
    with pytest.raises(ApplicationError):
        chat_selectors.message_get_for_principal(principal=AnonymousUser(), uuid=mine.uuid)


def test_membership_and_is_admin_are_per_organization(
    tenants: tuple[Tenant, Tenant],
    alice: Any,
    carol: Any,
    integration: IntegrationPrincipal,
) -> None:
    acme, globex = (t.org for t in tenants)
    find = organization_find_for_principal
    assert find(principal=alice, slug="acme") == acme
    assert find(principal=alice, slug="globex") is None  # globex has members: carol
    assert find(principal=carol, slug="globex") == globex
    assert find(principal=integration, slug="acme") == acme
    assert find(principal=integration, slug="globex") is None
    assert find(principal=alice, slug="ac\x00me") is None  # malformed: no query at all
    # an integration key configures its own organization (under its `admin` scope)
    assert is_admin(user=integration, organization=acme)
    assert not is_admin(user=integration, organization=globex)
    assert is_admin(user=alice, organization=acme)
    assert not is_admin(user=alice, organization=globex)
    assert not is_admin(user=carol, organization=acme)  # a member, not an admin
    # an admin of globex does not make alice one there
    bob = agent_create(username="bob", password=None)
    membership_add(organization=globex, user=bob, role="admin")
    assert not is_admin(user=alice, organization=globex)
    assert find(principal=alice, slug="globex") is None


def test_team_members_never_include_another_organizations_membership(
    tenants: tuple[Tenant, Tenant], alice: Any, carol: Any
) -> None:
    from core.models import TeamMember

    acme, globex = tenants[0].org, tenants[1].org
    team = tenants[0].team
    TeamMember.objects.create(
        team=team, membership=Membership.objects.get(user=alice, organization=acme), order=0
    )
    # a row edited to point at another organization's membership (admin, raw SQL)
    TeamMember.objects.create(
        team=team, membership=Membership.objects.get(user=carol, organization=globex), order=1
    )
    # carol's acme membership is in another acme team, not this one
    other_team = Team.objects.create(organization=acme, slug="sales", name="Sales")
    TeamMember.objects.create(
        team=other_team, membership=Membership.objects.get(user=carol, organization=acme)
    )
    members = escalation_selectors.team_members_of(team_id=team.pk, organization_id=acme.pk)
    assert [m.membership.user for m in members] == [alice]
    assert escalation_selectors.team_members_of(team_id=None, organization_id=acme.pk) == []


# --- through the HTTP API (in-process test client) ---------------------------------------


def _key_client(raw: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


@pytest.fixture
def alice_api(alice: Any) -> APIClient:
    _, raw = api_key_create(name="alice", user=alice)
    return _key_client(raw)


def test_http_another_organizations_objects_are_404(
    tenants: tuple[Tenant, Tenant], alice_api: APIClient
) -> None:
    mine, theirs = tenants
    paths = [
        "/api/help-desks/{t.help_desk.uuid}/history/",
        "/api/clients/{t.client.uuid}/",
        "/api/mailings/{t.mailing.pk}/",
        "/api/mailings/{t.mailing.pk}/stats/",
        "/api/templates/{t.template.pk}/",
        "/api/incidents/{t.incident.uuid}/",
        "/api/escalation/rules/{t.rule.pk}/",
        "/api/teams/{t.team.pk}/",
    ]
    for path in paths:
        assert alice_api.get(path.format(t=mine)).status_code == 200, path
        response = alice_api.get(path.format(t=theirs))
        assert response.status_code == 404, (path, response.status_code)
        assert response.json()["error"]["code"] == "not_found"


def test_http_lists_show_only_the_principals_organization(
    tenants: tuple[Tenant, Tenant], alice_api: APIClient
) -> None:
    mine = tenants[0]
    desks = alice_api.get("/api/help-desks/").json()
    rows = desks["results"] if isinstance(desks, dict) else desks
    assert [row["uuid"] for row in rows] == [str(mine.help_desk.uuid)]
    incidents = alice_api.get("/api/incidents/").json()
    rows = incidents["results"] if isinstance(incidents, dict) else incidents
    assert [row["id"] for row in rows] == [str(mine.incident.uuid)]
    # naming another organization is the same 404 as naming one that does not exist
    for slug in ("globex", "nope"):
        response = alice_api.get(f"/api/help-desks/?organization={slug}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_http_an_integration_key_reads_only_its_organization(
    tenants: tuple[Tenant, Tenant],
) -> None:
    mine, theirs = tenants
    _, raw = api_key_create(name="reader", organization=mine.org, scopes=["read"])
    api = _key_client(raw)
    assert api.get(f"/api/help-desks/{mine.help_desk.uuid}/history/").status_code == 200
    assert api.get(f"/api/help-desks/{theirs.help_desk.uuid}/history/").status_code == 404
    assert api.get(f"/api/incidents/{theirs.incident.uuid}/").status_code == 404
    assert api.get("/api/help-desks/?organization=globex").status_code == 404


def test_http_without_credentials_reads_nothing(tenants: tuple[Tenant, Tenant]) -> None:
    anonymous = APIClient()
    for path in (
        "/api/help-desks/",
        f"/api/help-desks/{tenants[0].help_desk.uuid}/history/",
        f"/api/incidents/{tenants[0].incident.uuid}/",
    ):
        assert anonymous.get(path).status_code in (401, 403), path
    # a revoked key is no key at all
    key, raw = api_key_create(name="gone", organization=tenants[0].org, scopes=["read"])
    ApiKey.objects.filter(pk=key.pk).delete()
    assert _key_client(raw).get("/api/help-desks/").status_code in (401, 403)


def test_a_help_desks_history_is_its_own_messages_only(tenants: tuple[Tenant, Tenant]) -> None:
    mine, theirs = tenants
    assert list(chat_selectors.message_list(help_desk=mine.help_desk)) == [mine.message]
    assert list(chat_selectors.message_list(help_desk=theirs.help_desk)) == [theirs.message]
