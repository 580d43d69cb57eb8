"""Demo escalation rule: the seed's action "0001" (seed 001), with its teams, and the
assistance topics `sales` and `engineering` (seed 000) routed to two of them."""

from __future__ import annotations

from chat.assistance import assistance_topic_create
from core.models import Membership, Organization
from escalation.models import Rule
from escalation.rules import rule_save, team_save

TEAMS = [("n1", "Support N1"), ("n2", "Support N2"), ("coordination", "Coordination")]


def create(*, organization: Organization) -> Rule:
    """Teams n1, n2, coordination (with the organization's agents) and rule 0001:
    login 503 + login 404 -> 5 occurrences warn the clients; 10 or 5 min -> N1;
    20 or 20 min -> N2; 60 min -> coordination."""
    members = list(
        Membership.objects.filter(organization=organization)
        .order_by("id")
        .values_list("user__username", flat=True)
    )
    for slug, name in TEAMS:
        team_save(organization=organization, slug=slug, name=name, members=members)
    # The assistance seed's topics, routed to these teams (created here because the
    # teams are; chat/demo.py runs first and has no teams yet).
    assistance_topic_create(organization=organization, name="sales", team_slug="n1")
    assistance_topic_create(organization=organization, name="engineering", team_slug="n2")
    return rule_save(
        organization=organization,
        code="0001",
        name="Login failing",
        triggers=[{"service": "login", "status": 503}, {"service": "login", "status": 404}],
        warn_after=5,
        warn_tags=["vip", "regular"],
        warn_message="We are having trouble with login. Our team is on it.",
        levels=[
            {"level": 1, "after_occurrences": 10, "after_minutes": 5, "team": "n1"},
            {"level": 2, "after_occurrences": 20, "after_minutes": 20, "team": "n2"},
            {"level": 3, "after_occurrences": None, "after_minutes": 60, "team": "coordination"},
        ],
    )
