"""Alertmanager partial recovery (issue 10 item 6): alerts are told apart by fingerprint.

Two instances fail the same (service, status): two alerts of one incident. When one
recovers Alertmanager posts the group as `firing`, one alert firing and one resolved.
The incident must stay open, a repeat of the still-firing alert must not open a second
incident, and the recovery of the last alert resolves it. Run through the Django view,
the in-process fast path (with the Django views broken, to prove it answers) and a real
daphne (the fast path as deployed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from escalation.alerts import alert_fingerprint
from escalation.evaluate import triggers_evaluate
from escalation.models import Incident, IncidentAlert, Rule, TriggerBatch
from tests.escalation.test_fastpath import post as fast_post
from tests.escalation.test_ingestion import alertmanager

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_503 = {"service": "login", "status": "503"}


def _alerts(status: str, *alerts: tuple[str, str]) -> dict[str, Any]:
    """A v4 payload of alerts (status, instance) of login/503, fingerprint per instance."""
    payload = alertmanager(status, *[(s, {**LOGIN_503, "instance": i}) for s, i in alerts])
    for alert, (_, instance) in zip(payload["alerts"], alerts, strict=True):
        alert["fingerprint"] = f"fp-{instance}"
    return payload


@pytest.fixture
def login_rule(org: Any) -> Rule:
    return Rule.objects.create(
        organization=org, code="login-503", triggers=[{"service": "login", "status": 503}]
    )


@pytest.fixture(params=["django", "fastpath", "daphne"])
def send(
    request: Any, org: Any, monitoring: Any, monitoring_key: str, monkeypatch: Any
) -> Callable[[dict[str, Any]], None]:
    """POST /api/alertmanager/ one way, then run the evaluation job body."""
    if request.param == "django":

        def _post(payload: dict[str, Any]) -> int:
            return int(monitoring.post("/api/alertmanager/", payload, format="json").status_code)

    elif request.param == "fastpath":
        from core.asgi import http_app
        from escalation.fastpath import TriggerFastPath

        app = TriggerFastPath(http_app.app)
        request.addfinalizer(app.committer.close)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the Django view answered")

        monkeypatch.setattr("escalation.api.AlertmanagerView.post", broken)

        def _post(payload: dict[str, Any]) -> int:
            return fast_post(app, "/api/alertmanager/", payload, monitoring_key)[0]

    else:
        web = request.getfixturevalue("start_web")()
        http = httpx.Client(
            base_url=web.url, headers={"Authorization": f"Bearer {monitoring_key}"}, timeout=10
        )
        request.addfinalizer(http.close)

        def _post(payload: dict[str, Any]) -> int:
            return http.post("/api/alertmanager/", json=payload).status_code

    def _send(payload: dict[str, Any]) -> None:
        assert _post(payload) == 202
        triggers_evaluate(organization_id=org.pk)

    return _send


def test_partial_recovery_keeps_the_incident_until_the_last_alert_resolves(
    login_rule: Rule, send: Callable[[dict[str, Any]], None]
) -> None:
    # given: two instances fail login/503: one incident, two alerts behind it
    send(_alerts("firing", ("firing", "a"), ("firing", "b")))
    incident = Incident.objects.get()
    assert incident.status == "open"
    assert set(IncidentAlert.objects.values_list("fingerprint", "firing")) == {
        ("fp-a", True),
        ("fp-b", True),
    }

    # when: one recovers (Alertmanager posts the group `firing`, b resolved)
    send(_alerts("firing", ("firing", "a"), ("resolved", "b")))
    # then: the incident stays open, a still firing
    incident.refresh_from_db()
    assert incident.status == "open"
    assert dict(IncidentAlert.objects.values_list("fingerprint", "firing")) == {
        "fp-a": True,
        "fp-b": False,
    }

    # when: the still-firing alert repeats
    send(_alerts("firing", ("firing", "a")))
    # then: it counts on the same incident; no second one is opened
    assert Incident.objects.count() == 1
    incident.refresh_from_db()
    assert (incident.status, incident.occurrences) == ("open", 3)

    # when: the last alert recovers
    send(_alerts("resolved", ("resolved", "a")))
    # then: the incident is resolved by Alertmanager
    incident.refresh_from_db()
    assert (incident.status, incident.resolve_reason) == ("resolved", "alertmanager")
    assert not IncidentAlert.objects.filter(firing=True).exists()
    # and the batches kept each alert's identity
    assert TriggerBatch.objects.filter(kind="resolved").last().alerts == [  # type: ignore[union-attr]
        ["login", 503, "fp-a"]
    ]


@pytest.mark.parametrize("send", ["django"], indirect=True)
def test_incident_of_seed_triggers_still_resolves_on_any_alertmanager_recovery(
    login_rule: Rule, send: Callable[[dict[str, Any]], None], monitoring: Any, org: Any
) -> None:
    # given: an incident opened by a seed/API post (no alert identity behind it)
    response = monitoring.post(
        "/api/triggers/", {"triggers": [{"service": "login", "status": 503}]}, format="json"
    )
    assert response.status_code == 202
    triggers_evaluate(organization_id=org.pk)
    # when: Alertmanager reports login/503 resolved
    send(_alerts("resolved", ("resolved", "a")))
    # then: it resolves, as before
    assert Incident.objects.get().status == "resolved"


def test_fingerprint_falls_back_to_a_hash_of_sorted_labels() -> None:
    labels = {"service": "login", "status": "503", "instance": "a"}
    same = dict(reversed(list(labels.items())))
    assert alert_fingerprint({}, labels) == alert_fingerprint({"fingerprint": " "}, same)
    assert alert_fingerprint({}, labels) != alert_fingerprint({}, {**labels, "instance": "b"})
    assert alert_fingerprint({"fingerprint": "3f2a"}, labels) == "3f2a"
    assert len(alert_fingerprint({"fingerprint": "x" * 500}, labels)) <= 64
