"""Admin: every page answers, incident state moves only through the services, rules
are validated like the API, team pickers stay inside the organization."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from core.events import log_key
from core.models import Membership, Team, TeamMember
from escalation.incidents import incident_record_occurrences
from escalation.models import Incident, IncidentStep, Rule
from escalation.rules import rule_save, rule_snapshot, rules_compiled, team_save

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(rule: Any) -> Incident:
    now = timezone.now()
    opened = incident_record_occurrences(rule_id=rule.pk, count=12, first_at=now, last_at=now)
    assert opened is not None and opened.level == 1  # warning + level 1: steps to list
    return opened


def _url(model: Any, view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_registered_model_answers_changelist_add_and_change(
    staff, incident, help_desk, make_org
):
    assert admin.site._registry, "nothing registered"
    checked = []
    for model, model_admin in admin.site._registry.items():
        changelist = staff.get(_url(model, "changelist"))
        assert changelist.status_code == 200, (model, changelist.status_code)
        add = staff.get(_url(model, "add"))
        # records (read-only admins) refuse the add page; every other one renders it
        can_add = model_admin.has_add_permission(changelist.wsgi_request)
        assert add.status_code == (200 if can_add else 403), (model, add.status_code)
        obj = model._default_manager.first()
        if obj is not None:
            change = staff.get(_url(model, "change", obj.pk))
            assert change.status_code == 200, (model, change.status_code)
        checked.append(model._meta.label)
    # the records that used to be reachable only inline have their own pages
    for label in (
        "escalation.RuleLevel",
        "escalation.IncidentStep",
        "escalation.IncidentNotification",
        "chat.AssistanceWebhookAttempt",
        "core.DeliveryAttempt",
        "core.TeamMember",
    ):
        assert label in checked


def test_incident_state_is_read_only(staff, incident):
    page = staff.get(_url(Incident, "change", incident.pk))
    assert page.status_code == 200
    assert b'name="status"' not in page.content and b'name="level"' not in page.content
    forged = staff.post(
        _url(Incident, "change", incident.pk), {"status": "resolved", "level": 0, "occurrences": 1}
    )
    assert forged.status_code == 403
    incident.refresh_from_db()
    assert (incident.status, incident.level, incident.occurrences) == ("open", 1, 12)


def test_acknowledge_and_resolve_actions_call_the_services(
    staff, incident, redis_client, django_capture_on_commit_callbacks
):
    changelist = _url(Incident, "changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            changelist, {"action": "acknowledge", "_selected_action": [incident.pk]}, follow=True
        )
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == "acknowledged" and incident.acknowledged_by.username == "root"
    assert incident.active_job_id == ""  # the fencing token is cleared: checks are no-ops

    # a second acknowledge is refused by the service (409) and said so, not applied
    response = staff.post(
        changelist, {"action": "acknowledge", "_selected_action": [incident.pk]}, follow=True
    )
    assert b"Not changed" in response.content

    with django_capture_on_commit_callbacks(execute=True):
        staff.post(changelist, {"action": "resolve", "_selected_action": [incident.pk]})
    incident.refresh_from_db()
    assert (incident.status, incident.resolve_reason) == ("resolved", "admin")
    types = [
        json.loads(fields[b"f"])["type"]
        for _, fields in redis_client.xrange(log_key(incident.organization_id))
    ]
    assert types[-2:] == ["incident_acknowledged", "incident_resolved"]


def _rule_post(org: Any, levels: list[dict[str, Any]] | None = None, **fields: Any) -> dict:
    data: dict[str, Any] = {
        "organization": org.pk,
        "code": "r9",
        "name": "",
        "is_active": "on",
        "triggers": json.dumps([{"service": "api", "status": 500}]),
        "warn_after": "",
        "warn_tags": "[]",
        "warn_message": "",
        **fields,
    }
    levels = levels or []
    data.update(
        {
            "levels-TOTAL_FORMS": str(len(levels)),
            "levels-INITIAL_FORMS": "0",
            "levels-MIN_NUM_FORMS": "0",
            "levels-MAX_NUM_FORMS": "1000",
        }
    )
    for i, lv in enumerate(levels):
        for key, value in lv.items():
            data[f"levels-{i}-{key}"] = "" if value is None else value
    return data


@pytest.mark.parametrize(
    ("fields", "levels", "error"),
    [
        ({"triggers": json.dumps([{"service": "api"}])}, None, b"status: This field is required"),
        (
            {"triggers": json.dumps([{"service": "api", "status": 999}])},
            None,
            b"An HTTP status code (100-599)",
        ),
        ({"triggers": json.dumps({"service": "api"})}, None, b"Expected a list of items"),
        ({"triggers": "[]"}, None, b"This field is required"),
        ({"warn_after": "5"}, None, b"Required with warn_after"),
        ({"warn_tags": json.dumps(["not a tag!"])}, None, b"Tag: 1-50 letters"),
        ({}, [{"level": 2, "after_occurrences": 3}], b"Number them"),
        (
            {},
            [{"level": 1, "after_occurrences": None, "after_minutes": None}],
            b"rule_level_has_threshold",
        ),
    ],
)
def test_rule_admin_refuses_what_the_api_refuses(staff, org, fields, levels, error):
    response = staff.post(_url(Rule, "add"), _rule_post(org, levels, **fields))
    assert response.status_code == 200  # the form again, with errors
    assert b"errorlist" in response.content
    assert error in response.content, response.content.decode()[:3000]
    assert not Rule.objects.filter(code="r9").exists()


def test_rule_admin_normalizes_triggers_like_the_api_and_invalidates_the_cache(
    staff, org, redis_client, django_capture_on_commit_callbacks
):
    team_save(organization=org, slug="ops")
    triggers = [
        {"service": "login", "status": "503"},
        {"service": "api", "status": 500},
        {"service": "login", "status": 503},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            _url(Rule, "add"),
            _rule_post(
                org,
                [{"level": 1, "after_minutes": 5, "team": Team.objects.get(slug="ops").pk}],
                triggers=json.dumps(triggers),
                warn_after="3",
                warn_message="Sorry",
            ),
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = Rule.objects.get(code="r9")
    assert rule.triggers == [{"service": "api", "status": 500}, {"service": "login", "status": 503}]
    assert rule.levels.get().team.slug == "ops"
    assert redis_client.get(f"escalation:rules:{org.pk}") is not None


def test_rule_level_team_picker_and_validation_stay_in_the_organization(staff, rule, make_org):
    foreign = team_save(organization=make_org("other"), slug="spy")
    page = staff.get(_url(Rule, "change", rule.pk))
    assert b"n1 @" in page.content and b"spy @" not in page.content  # not offered
    # and a forged id is refused
    forged = [{"level": 1, "after_occurrences": 2, "team": foreign.pk}]
    response = staff.post(_url(Rule, "add"), _rule_post(rule.organization, forged))
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert not Rule.objects.filter(code="r9").exists()


def test_team_member_inline_refuses_another_organizations_membership(
    staff, org, agent, make_agent, make_org
):
    team = team_save(organization=org, slug="ops", members=[agent.user.username])
    eve = make_agent("eve", make_org("other"))
    eve_membership = Membership.objects.get(user=eve.user)
    existing = TeamMember.objects.get(team=team)
    response = staff.post(
        _url(Team, "change", team.pk),
        {
            "organization": org.pk,
            "name": "Ops",
            "slug": "ops",
            "members-TOTAL_FORMS": "2",
            "members-INITIAL_FORMS": "1",
            "members-MIN_NUM_FORMS": "0",
            "members-MAX_NUM_FORMS": "1000",
            "members-0-id": str(existing.pk),
            "members-0-team": str(team.pk),
            "members-0-membership": str(existing.membership_id),
            "members-0-order": "0",
            "members-1-team": str(team.pk),
            "members-1-membership": str(eve_membership.pk),
            "members-1-order": "1",
        },
    )
    assert response.status_code == 200, response.status_code
    assert not TeamMember.objects.filter(membership=eve_membership).exists()


def test_records_cannot_be_edited(staff, incident):
    step = IncidentStep.objects.filter(incident=incident).first()
    assert step is not None
    assert staff.post(_url(IncidentStep, "change", step.pk), {"level": 9}).status_code == 403
    assert staff.post(_url(IncidentStep, "delete", step.pk), {"post": "yes"}).status_code == 403


# --- writes go through the services, with the API's effects ------------------------------


def _token(redis_client: Any, org: Any) -> Any:
    return redis_client.get(f"escalation:rules:{org.pk}")


def _compiled(redis_client: Any, org: Any) -> list[tuple[str, frozenset]]:
    """What the ingestion matches against: the per-process cache under the current token."""

    return [
        (code, ts) for _, code, ts in rules_compiled({org.pk: _token(redis_client, org)})[org.pk]
    ]


def test_a_rule_changed_or_deleted_in_the_admin_reaches_the_ingestion_cache_after_commit(
    staff, org, redis_client, django_capture_on_commit_callbacks
):
    # given: a rule the ingestion has cached
    rule = rule_save(
        organization=org,
        code="r9",
        triggers=[{"service": "login", "status": 503}],
        levels=[{"level": 1, "after_occurrences": 3}],
    )
    redis_client.set(f"escalation:rules:{org.pk}", "v1")
    assert _compiled(redis_client, org) == [("r9", frozenset({("login", 503)}))]
    level = rule.levels.get()
    change = _rule_post(org, triggers=json.dumps([{"service": "api", "status": 500}]))
    change.update(
        {
            "levels-TOTAL_FORMS": "1",
            "levels-INITIAL_FORMS": "1",
            "levels-0-id": str(level.pk),
            "levels-0-rule": str(rule.pk),
            "levels-0-level": "1",
            "levels-0-after_occurrences": "4",
            "levels-0-after_minutes": "",
            "levels-0-team": "",
        }
    )
    # when: an admin changes its triggers and level (not yet committed: nothing bumped)
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff.post(_url(Rule, "change", rule.pk), change)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert _token(redis_client, org) == b"v1"
    for callback in callbacks:
        callback()
    # then: rule_save replaced the rule and its levels, and the cache sees the change
    assert _token(redis_client, org) != b"v1"
    assert _compiled(redis_client, org) == [("r9", frozenset({("api", 500)}))]
    assert list(rule.levels.values_list("level", "after_occurrences")) == [(1, 4)]
    # and a delete in the admin goes through rule_delete: the cache forgets the rule
    redis_client.set(f"escalation:rules:{org.pk}", "v2")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(_url(Rule, "delete", rule.pk), {"post": "yes"})
    assert response.status_code == 302
    assert _token(redis_client, org) != b"v2" and _compiled(redis_client, org) == []


def test_a_rule_saved_in_the_admin_is_the_api_s_rule(staff, org, agent):
    # given: the same rule, once through the API and once through the admin
    team_save(organization=org, slug="ops")
    ops = Team.objects.get(slug="ops")
    triggers = [{"service": "login", "status": 503}, {"service": "api", "status": "500"}]
    api = agent.client().post(
        "/api/escalation/rules/",
        {
            "organization": org.slug,
            "code": "r8",
            "triggers": triggers,
            "warn_after": 2,
            "warn_message": "Sorry",
            "levels": [{"level": 1, "after_minutes": 5, "team": "ops"}],
        },
        format="json",
    )
    assert api.status_code == 201, api.content
    response = staff.post(
        _url(Rule, "add"),
        _rule_post(
            org,
            [{"level": 1, "after_minutes": 5, "team": ops.pk}],
            triggers=json.dumps(triggers),
            warn_after="2",
            warn_message="Sorry",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]

    # then: both rows say the same (through rule_snapshot, what an incident freezes)
    def snapshot(code: str) -> dict[str, Any]:
        return {
            k: v
            for k, v in rule_snapshot(Rule.objects.get(code=code)).items()
            if k not in ("rule_id", "code")
        }

    assert snapshot("r9") == snapshot("r8")


def test_team_admin_saves_members_through_team_save(staff, org, agent, make_agent):
    bob = make_agent("bob", org)
    memberships = {m.user.username: m.pk for m in Membership.objects.filter(organization=org)}
    data = {
        "organization": org.pk,
        "slug": "ops",
        "name": "Ops",
        "members-TOTAL_FORMS": "2",
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
        "members-0-membership": str(memberships["bob"]),
        "members-0-order": "0",
        "members-1-membership": str(memberships[agent.user.username]),
        "members-1-order": "1",
    }
    response = staff.post(_url(Team, "add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    team = Team.objects.get(organization=org, slug="ops")
    assert team.name == "Ops"
    ordered = team.members.order_by("order").values_list("membership__user__username", flat=True)
    assert list(ordered) == [bob.user.username, agent.user.username]
    # a slug used twice is refused on the form, nothing written
    again = staff.post(_url(Team, "add"), {**data, "members-TOTAL_FORMS": "0"})
    assert again.status_code == 200 and b"errorlist" in again.content
    assert Team.objects.filter(organization=org, slug="ops").count() == 1
