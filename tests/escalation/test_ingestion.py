"""Trigger payloads: seed, English, Alertmanager; matching; bad input; rules and teams API."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import ApiKey
from escalation.evaluate import triggers_evaluate
from escalation.models import Incident, Rule, TriggerBatch
from tests.escalation.conftest import SEED

pytestmark = pytest.mark.django_db


def alertmanager(status: str, *alerts: tuple[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="LoginErrors"}',
        "status": status,
        "receiver": "platform",
        "groupLabels": {"alertname": "LoginErrors"},
        "commonLabels": {"alertname": "LoginErrors"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": s,
                "labels": {"alertname": "LoginErrors", **labels},
                "annotations": {"summary": "login failing"},
                "startsAt": "2026-03-02T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "abc",
            }
            for s, labels in alerts
        ],
    }


def test_seed_payload_matches_in_any_order_and_counts_one_occurrence_per_post(
    org, rule, monitoring
):
    reversed_seed = {"gatilhos": list(reversed(SEED["gatilhos"]))}
    for payload in (SEED, reversed_seed):
        response = monitoring.post("/api/triggers/", payload, format="json")
        assert response.status_code == 202
        body = response.json()
        assert [m["rule"] for m in body["matched"]] == ["0001"]
        assert body["unmatched"] == [] and body["received"] == 2
    triggers_evaluate(organization_id=org.pk)
    assert Incident.objects.get().occurrences == 2


def test_english_payload_with_extra_triggers_reports_the_unmatched_ones(org, rule, monitoring):
    payload = {
        "triggers": [
            {"service": "login", "status": 404},
            {"service": "billing", "status": "500"},
            {"service": "login", "status": 503},
        ]
    }
    body = monitoring.post("/api/triggers/", payload, format="json").json()
    assert [m["rule"] for m in body["matched"]] == ["0001"]
    assert body["unmatched"] == [{"service": "billing", "status": 500}]
    batch = TriggerBatch.objects.get()
    assert batch.unmatched == [{"service": "billing", "status": 500}]


def test_partial_set_does_not_match_and_is_recorded_not_dropped(org, rule, monitoring):
    body = monitoring.post(
        "/api/triggers/", {"triggers": [{"service": "login", "status": 503}]}, format="json"
    ).json()
    assert body["matched"] == []
    assert body["unmatched"] == [{"service": "login", "status": 503}]
    batch = TriggerBatch.objects.get(pk=body["batches"][0])
    assert batch.evaluated_at is not None  # nothing to evaluate
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "triggers"),
        ({"gatilhos": []}, "gatilhos"),
        ({"triggers": []}, "triggers"),
        ({"gatilhos": [{"servico": "login"}]}, "gatilhos"),
        ({"gatilhos": [{"retorno": "503"}]}, "gatilhos"),
        ({"gatilhos": [{"servico": "login", "retorno": "abc"}]}, "gatilhos"),
        ({"gatilhos": [{"servico": "login", "retorno": "99"}]}, "gatilhos"),
        ({"gatilhos": [{"servico": "login", "retorno": 50.3}]}, "gatilhos"),
        ({"gatilhos": [{"servico": "login", "retorno": True}]}, "gatilhos"),
        ({"gatilhos": "login"}, "gatilhos"),
        ({"gatilhos": [["login", "503"]]}, "gatilhos"),
        ({"triggers": [{"service": "", "status": 503}]}, "triggers"),
        ({"triggers": [{"service": {"x": 1}, "status": 503}]}, "triggers"),
        (
            {"triggers": [{"service": "login", "status": 503}], "gatilhos": SEED["gatilhos"]},
            "triggers",
        ),
    ],
)
def test_bad_payloads_are_400_with_field_errors(org, monitoring, payload, field):
    response = monitoring.post("/api/triggers/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert TriggerBatch.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", '[{"servico": "login"}]', "", "null"])
def test_malformed_json_is_400(org, monitoring, raw):
    response = monitoring.post("/api/triggers/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("parse_error", "validation_error")


def test_triggers_need_an_integration_key_or_an_organization(org, agent):
    response = agent.client().post("/api/triggers/", SEED, format="json")
    assert response.status_code == 400 and "organization" in response.json()["error"]["fields"]
    ok = agent.client().post("/api/triggers/?organization=acme", SEED, format="json")
    assert ok.status_code == 202
    from rest_framework.test import APIClient

    assert APIClient().post("/api/triggers/", SEED, format="json").status_code in (401, 403)


def test_alertmanager_firing_opens_resolved_resolves_and_firing_again_reopens(
    org, rule, monitoring
):
    firing = alertmanager(
        "firing",
        ("firing", {"service": "login", "status": "503"}),
        ("firing", {"job": "login", "code": "404"}),  # mapped from job/code
        ("firing", {"instance": "db-1"}),  # unmappable: reported, not a 400
    )
    body = monitoring.post("/api/alertmanager/", firing, format="json").json()
    assert [m["rule"] for m in body["matched"]] == ["0001"]
    assert len(body["ignored"]) == 1 and body["ignored"][0]["alert"] == 2
    triggers_evaluate(organization_id=org.pk)
    first = Incident.objects.get()
    assert first.status == "open"

    # Both alerts behind the incident recover (one alone leaves it open: test_alert_fingerprints)
    resolved = alertmanager(
        "resolved",
        ("resolved", {"service": "login", "status": "503"}),
        ("resolved", {"job": "login", "code": "404"}),
    )
    body = monitoring.post("/api/alertmanager/", resolved, format="json").json()
    assert [m["rule"] for m in body["resolving"]] == ["0001"]
    triggers_evaluate(organization_id=org.pk)
    first.refresh_from_db()
    assert (first.status, first.resolve_reason) == ("resolved", "alertmanager")

    monitoring.post("/api/alertmanager/", firing, format="json")
    triggers_evaluate(organization_id=org.pk)
    assert Incident.objects.filter(status="open").exclude(pk=first.pk).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": "3"}, "version"),
        ({"status": "exploded"}, "status"),
        ({"alerts": []}, "alerts"),
        ({"alerts": [{"status": "firing"}]}, "alerts"),
        ({"alerts": "nope"}, "alerts"),
    ],
)
def test_bad_alertmanager_payloads_are_400(org, monitoring, change, field):
    payload = {
        **alertmanager("firing", ("firing", {"service": "login", "status": "503"})),
        **change,
    }
    response = monitoring.post("/api/alertmanager/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_rules_and_teams_api(org, agent, make_agent, monitoring):
    make_agent("bob", org, role="agent")
    api = agent.client()
    team = api.post(
        "/api/teams/",
        {"organization": "acme", "slug": "n1", "members": ["alice", "bob"]},
        format="json",
    )
    assert team.status_code == 201 and team.json()["members"] == ["alice", "bob"]
    bad_team = api.post(
        "/api/teams/", {"organization": "acme", "slug": "n2", "members": ["zed"]}, format="json"
    )
    assert bad_team.status_code == 400 and "members" in bad_team.json()["error"]["fields"]

    rule = {
        "organization": "acme",
        "code": "0002",
        "triggers": [{"service": "pay", "status": "500"}, {"service": "pay", "status": 500}],
        "warn_after": 3,
        "warn_tags": ["vip"],
        "warn_message": "Payments are slow.",
        "levels": [{"level": 1, "after_occurrences": 5, "after_minutes": 2.5, "team": "n1"}],
    }
    created = api.post("/api/escalation/rules/", rule, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["triggers"] == [{"service": "pay", "status": 500}]  # a set
    assert api.post("/api/escalation/rules/", rule, format="json").status_code == 400  # code
    for broken, field in (
        ({"levels": [{"level": 1}]}, "levels"),
        ({"levels": [{"level": 2, "after_minutes": 1}]}, "levels"),
        ({"levels": [{"level": 1, "after_minutes": 1, "team": "ghost"}]}, "levels"),
        ({"warn_message": ""}, "warn_message"),
        ({"triggers": []}, "triggers"),
        ({"triggers": [{"service": "pay", "status": "x"}]}, "triggers"),
    ):
        response = api.post(
            "/api/escalation/rules/", {**rule, "code": "09", **broken}, format="json"
        )
        assert response.status_code == 400, (broken, response.content)
        assert field in response.json()["error"]["fields"]
    plain = make_agent("carl", org, role="agent")
    denied = plain.client().post("/api/escalation/rules/", {**rule, "code": "7"}, format="json")
    assert denied.status_code == 403
    # an integration key with `read` sees its organization's rules (monitoring's own
    # default scopes do not include it: tests/core/test_scopes.py)
    ApiKey.objects.filter(name="monitoring").update(scopes=["read", "triggers"])
    assert len(monitoring.get("/api/escalation/rules/").json()) == 1
    pk = created.json()["id"]
    updated = api.put(f"/api/escalation/rules/{pk}/", {**rule, "is_active": False}, format="json")
    assert updated.status_code == 200 and updated.json()["is_active"] is False
    assert Rule.objects.get(pk=pk).levels.get().team.slug == "n1"


@pytest.mark.django_db(transaction=True)
def test_a_rule_change_is_seen_by_the_next_post(org, monitoring):
    from escalation.rules import rule_save

    payload = {"triggers": [{"service": "search", "status": 502}]}
    assert monitoring.post("/api/triggers/", payload, format="json").json()["matched"] == []
    rule_save(organization=org, code="s", triggers=payload["triggers"], levels=[])
    body = monitoring.post("/api/triggers/", payload, format="json").json()
    assert [m["rule"] for m in body["matched"]] == ["s"]


@pytest.mark.django_db(transaction=True)
def test_the_evaluator_lingers_and_takes_batches_posted_while_it_runs(org, monitoring, settings):
    import threading

    from escalation.rules import rule_save

    settings.ESCALATION_EVALUATOR_IDLE = 2
    rule_save(organization=org, code="s", triggers=[{"service": "s", "status": 500}], levels=[])
    payload = {"triggers": [{"service": "s", "status": 500}]}
    monitoring.post("/api/triggers/", payload, format="json")
    result: list[int] = []

    def evaluate() -> None:
        from django.db import connection

        try:
            result.append(triggers_evaluate(organization_id=org.pk))
        finally:
            connection.close()

    evaluator = threading.Thread(target=evaluate)
    evaluator.start()
    # posted while the evaluator runs: it sees the flag, only wakes the evaluator
    for _ in range(3):
        monitoring.post("/api/triggers/", payload, format="json")
    evaluator.join(timeout=30)
    assert result == [4]
    assert Incident.objects.get().occurrences == 4
    assert not TriggerBatch.objects.filter(evaluated_at__isnull=True).exists()


def test_demo_creates_the_seed_action_teams_and_assistance_topics(org, agent):
    from chat.models import AssistanceTopic
    from escalation.demo import create

    rule = create(organization=org)
    assert rule.code == "0001" and rule.warn_after == 5
    assert [
        (lv.level, lv.after_occurrences, lv.after_minutes, lv.team.slug) for lv in rule.levels.all()
    ] == [
        (1, 10, 5, "n1"),
        (2, 20, 20, "n2"),
        (3, None, 60, "coordination"),
    ]
    assert sorted(AssistanceTopic.objects.values_list("name", flat=True)) == [
        "engineering",
        "sales",
    ]


def test_too_many_triggers_in_one_post_is_400(org, monitoring):
    payload = {"triggers": [{"service": f"s{i}", "status": 500} for i in range(1001)]}
    response = monitoring.post("/api/triggers/", payload, format="json")
    assert response.status_code == 400 and "triggers" in response.json()["error"]["fields"]


def test_unmappable_alerts_are_recorded_and_an_all_unmappable_payload_makes_a_batch(
    org, rule, monitoring
):
    # given: only alerts whose labels map to no (service, status) pair
    payload = alertmanager(
        "firing",
        ("firing", {"instance": "db-1"}),
        ("resolved", {"service": "login", "status": "abc"}),
    )
    # when
    response = monitoring.post("/api/alertmanager/", payload, format="json")
    # then: accepted, reported, and recorded (one batch per status), nothing to evaluate
    assert response.status_code == 202
    body = response.json()
    assert [i["alert"] for i in body["ignored"]] == [0, 1]
    assert body["received"] == 0 and len(body["batches"]) == 2
    batches = {b.kind: b for b in TriggerBatch.objects.filter(pk__in=body["batches"])}
    assert batches["firing"].triggers == [] and batches["firing"].evaluated_at is not None
    [stored] = batches["firing"].unmatched
    assert stored["alert"] == 0 and stored["labels"]["instance"] == "db-1"
    assert "service" in stored["reason"]
    assert batches["resolved"].unmatched[0]["alert"] == 1
    assert Incident.objects.count() == 0


def test_unmatched_resolved_pairs_are_reported_and_stored(org, rule, monitoring):
    payload = alertmanager(
        "resolved",
        ("resolved", {"service": "login", "status": "503"}),
        ("resolved", {"service": "billing", "status": "500"}),
    )
    body = monitoring.post("/api/alertmanager/", payload, format="json").json()
    assert [m["rule"] for m in body["resolving"]] == ["0001"]
    assert body["resolved_unmatched"] == [{"service": "billing", "status": 500}]
    assert body["unmatched"] == [] and body["ignored"] == []
    batch = TriggerBatch.objects.get(pk=body["batches"][0])
    assert batch.kind == "resolved"
    assert batch.unmatched == [{"service": "billing", "status": 500}]
