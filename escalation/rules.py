"""Rules and teams: saved and checked here, frozen into an incident by `rule_snapshot`.

The ingestion path matches every post against its organization's active rules, so
they are cached in each web process behind a version token in Redis
(`escalation:rules:<org>`): one Redis GET per post (in the same round trip as the
evaluators' wake-up, see `escalation.ingest`) instead of a database query.

1. Every rule change (here, or the admin through these functions) replaces the token
   after commit (`rules_changed_on_commit`).
2. A reader asks Redis for the tokens (`rules_version_commands` on its pipeline), and
   `rules_compiled` reuses its cached copy only while the token is unchanged.
3. A token lost in a Redis restart is re-created, which also invalidates every
   process's copy.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils.translation import gettext

from core.errors import ApplicationError
from core.logging import get_logger
from core.models import Membership, Organization, Team, TeamMember
from core.redis import get_redis
from escalation.models import Rule, RuleLevel

log = get_logger(__name__)

Pair = tuple[str, int]  # a trigger: (service, HTTP status)
CompiledRules = list[tuple[int, str, frozenset[Pair]]]  # (rule id, code, trigger set)


# --- teams ---------------------------------------------------------------------------


@transaction.atomic
def team_save(
    *,
    organization: Organization,
    slug: str,
    name: str = "",
    members: list[str] | None = None,
    team: Team | None = None,
) -> Team:
    """Create (or, with `team`, replace) a team; `members` are usernames, in
    round-robin order. Every member must belong to the organization."""
    if team is None:
        if Team.objects.filter(organization=organization, slug=slug).exists():
            raise ApplicationError(
                gettext("Team exists."), fields={"slug": [gettext("Already used here.")]}
            )
        team = Team(organization=organization)
    team.slug, team.name = slug, name or slug
    team.full_clean(validate_unique=False)
    team.save()
    if members is not None:
        found = {
            m.user.username: m
            for m in Membership.objects.filter(
                organization=organization, user__username__in=members
            ).select_related("user")
        }
        missing = [u for u in members if u not in found]
        if missing:
            raise ApplicationError(
                gettext("Unknown agents."),
                fields={"members": [gettext("Not members here: %(names)s.") % {"names": missing}]},
            )
        TeamMember.objects.filter(team=team).delete()
        TeamMember.objects.bulk_create(
            TeamMember(team=team, membership=found[u], order=i) for i, u in enumerate(members)
        )
    log.info("team_saved", team_id=team.pk, organization_id=organization.pk)
    return team


@transaction.atomic
def team_delete(*, team: Team) -> None:
    """Delete a team: levels and assistance topics routed to it keep no team (their
    foreign keys are SET_NULL); a running incident keeps the snapshot it froze, and a
    level firing later notifies nobody (`incidents._fire` checks the team exists)."""
    log.info("team_deleted", team_id=team.pk, organization_id=team.organization_id)
    team.delete()


# --- rules ---------------------------------------------------------------------------


def rule_check(
    *,
    organization: Organization,
    code: str,
    warn_after: int | None,
    warn_message: str,
    rule: Rule | None = None,
) -> None:
    """A rule's own invariants (the API, through `rule_save`, and the admin form)."""
    if warn_after is not None and not warn_message:
        raise ApplicationError(
            gettext("A warning needs a message."),
            fields={"warn_message": [gettext("Required with warn_after.")]},
        )
    others = Rule.objects.filter(organization=organization, code=code)
    if rule is not None and rule.pk is not None:
        others = others.exclude(pk=rule.pk)
    if others.exists():
        raise ApplicationError(
            gettext("Rule exists."), fields={"code": [gettext("Already used here.")]}
        )


def rule_levels_check(*, organization: Organization, levels: list[dict[str, Any]]) -> None:
    """Levels numbered 1..n, each with a threshold, each team one of the organization's
    (`team`: a slug, a `Team` or None). Used by `rule_save` and the admin's levels."""
    numbers = [lv["level"] for lv in levels]
    if sorted(numbers) != list(range(1, len(levels) + 1)):
        raise ApplicationError(
            gettext("Levels must be numbered 1..n."),
            fields={"levels": [gettext("Number them 1, 2, 3...")]},
        )
    slugs = set(Team.objects.filter(organization=organization).values_list("slug", flat=True))
    for lv in levels:
        if lv.get("after_occurrences") is None and lv.get("after_minutes") is None:
            raise ApplicationError(
                gettext("A level needs a threshold."),
                fields={
                    "levels": [
                        gettext("Level %(level)s: after_occurrences or after_minutes.")
                        % {"level": lv["level"]}
                    ]
                },
            )
        team = lv.get("team")
        if isinstance(team, Team):
            if team.organization_id != organization.pk:
                raise ApplicationError(
                    gettext("Another organization's team."),
                    fields={
                        "levels": [
                            gettext("Level %(level)s: team %(team)s is not here.")
                            % {"level": lv["level"], "team": team.slug}
                        ]
                    },
                )
        elif team and team not in slugs:
            raise ApplicationError(
                gettext("Unknown team."),
                fields={
                    "levels": [
                        gettext("Level %(level)s: no team %(team)s.")
                        % {"level": lv["level"], "team": team}
                    ]
                },
            )


def normalize_triggers(pairs: Any) -> list[dict[str, Any]]:
    unique = {(str(p["service"]), int(p["status"])) for p in pairs}
    return [{"service": s, "status": c} for s, c in sorted(unique)]


@transaction.atomic
def rule_save(
    *,
    organization: Organization,
    code: str,
    triggers: list[dict[str, Any]],
    levels: list[dict[str, Any]],
    name: str = "",
    is_active: bool = True,
    warn_after: int | None = None,
    warn_tags: list[str] | None = None,
    warn_message: str = "",
    rule: Rule | None = None,
) -> Rule:
    """Create a rule, or replace `rule` (its levels too; moving it to `organization`
    from another one invalidates both caches). Open incidents keep their snapshot.
    `levels` items: {"level", "after_occurrences", "after_minutes", "team"} where the
    team is a slug or a `Team` of the organization."""
    if not triggers:
        raise ApplicationError(
            gettext("No triggers."), fields={"triggers": [gettext("At least one trigger.")]}
        )
    rule_check(
        organization=organization,
        code=code,
        warn_after=warn_after,
        warn_message=warn_message,
        rule=rule,
    )
    rule_levels_check(organization=organization, levels=levels)
    teams = {t.slug: t for t in Team.objects.filter(organization=organization)}
    rule = rule or Rule(organization=organization)
    if rule.organization_id is not None and rule.organization_id != organization.pk:
        rules_changed_on_commit(rule.organization_id)  # moved away from it
    rule.organization = organization
    rule.code, rule.name, rule.is_active = code, name, is_active
    rule.triggers = normalize_triggers(triggers)
    rule.warn_after, rule.warn_tags, rule.warn_message = warn_after, warn_tags or [], warn_message
    rule.save()
    RuleLevel.objects.filter(rule=rule).delete()
    RuleLevel.objects.bulk_create(
        RuleLevel(
            rule=rule,
            level=lv["level"],
            after_occurrences=lv.get("after_occurrences"),
            after_minutes=lv.get("after_minutes"),
            team=_level_team(lv.get("team"), teams),
        )
        for lv in levels
    )
    log.info("rule_saved", rule_id=rule.pk, organization_id=organization.pk, code=code)
    rules_changed_on_commit(organization.pk)
    return rule


def _level_team(team: Team | str | None, teams: dict[str, Team]) -> Team | None:
    if isinstance(team, Team):
        return team  # checked by rule_levels_check: one of the organization's
    return teams.get(team or "")


@transaction.atomic
def rule_delete(*, rule: Rule) -> None:
    log.info("rule_deleted", rule_id=rule.pk)
    rules_changed_on_commit(rule.organization_id)
    rule.delete()


def rule_snapshot(rule: Rule) -> dict[str, Any]:
    """What an incident freezes when it opens: later rule edits do not change it."""
    return {
        "rule_id": rule.pk,
        "code": rule.code,
        "name": rule.name,
        "triggers": rule.triggers,
        "warn_after": rule.warn_after,
        "warn_tags": list(rule.warn_tags),
        "warn_message": rule.warn_message,
        "levels": [
            {
                "level": lv.level,
                "after_occurrences": lv.after_occurrences,
                "after_minutes": lv.after_minutes,
                "team_id": lv.team_id,
                "team": lv.team.slug if lv.team else None,
            }
            for lv in rule.levels.select_related("team").order_by("level")
        ],
    }


# --- the per-process cache of active rules -------------------------------------------

# organization id -> (version token, its active rules)
_CACHE: dict[int, tuple[Any, CompiledRules]] = {}


def rules_cache_clear() -> None:
    """Forget every cached organization (tests: a rule saved in a rolled-back test
    transaction never bumps its token)."""
    _CACHE.clear()


def _version_key(organization_id: int) -> str:
    return f"escalation:rules:{int(organization_id)}"


def rules_changed_on_commit(organization_id: int) -> None:
    """Invalidate every web process's cached rules of the organization, after commit."""

    def _bump() -> None:
        try:
            get_redis().set(_version_key(organization_id), secrets.token_hex(8))
        except Exception:
            log.exception("rules_version_bump_failed", organization_id=organization_id)

    transaction.on_commit(_bump)


def rules_version_commands(pipe: Any, organization_ids: list[int]) -> None:
    """Queue the GET of each organization's token on `pipe` (one reply each, in order),
    so the caller reads them in a round trip it makes anyway."""
    for organization_id in organization_ids:
        pipe.get(_version_key(organization_id))


def rules_compiled(tokens: dict[int, Any]) -> dict[int, CompiledRules]:
    """The active rules of each organization, given the tokens just read: the cached
    copy while its token is unchanged, else a database query (cached under the token)."""
    client = get_redis()
    out: dict[int, CompiledRules] = {}
    for organization_id, token in tokens.items():
        if token is None:
            key = _version_key(organization_id)
            client.set(key, secrets.token_hex(8), nx=True)
            token = client.get(key)
        cached = _CACHE.get(organization_id)
        if cached is not None and token is not None and cached[0] == token:
            out[organization_id] = cached[1]
            continue
        rules = [
            (pk, code, frozenset((t["service"], int(t["status"])) for t in triggers))
            for pk, code, triggers in Rule.objects.filter(
                organization_id=organization_id, is_active=True
            ).values_list("pk", "code", "triggers")
        ]
        if token is not None:
            _CACHE[organization_id] = (token, rules)
        out[organization_id] = rules
    return out
