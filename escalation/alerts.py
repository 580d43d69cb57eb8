"""The Alertmanager alerts behind an incident: resolve only when none is still firing.

Alertmanager groups alerts: two instances failing the same (service, status) are two
alerts of one group, and when one recovers it posts the group with status `firing`,
one alert `firing` and one `resolved`. Matching is on (service, status) pairs, so
without knowing which alert is which, that `resolved` pair resolved the incident
while the other alert still fired, and the next repeat opened a second incident.

1. Every posted alert carries an identity: Alertmanager's `fingerprint` (v4 payload),
   or, when a sender leaves it out, a hash of its sorted labels (`alert_fingerprint`).
   Parsing (the Django view and the fast path) keeps it beside each pair, and the
   batch stores `alerts` = [[service, status, fingerprint], ...].
2. Evaluating a firing batch records its alerts on the incident of every matched rule
   whose trigger set holds their pair (`incident_alerts_firing`), in the same
   transaction that counts the occurrence (the incident row is locked).
3. Evaluating a resolved batch marks those alerts resolved and resolves the incident
   only if none of its alerts is still firing (`incidents_alerts_resolved`). An
   incident with no alert recorded (opened by seed/API triggers) resolves as before.

An alert that Alertmanager never reports resolved keeps its incident open: an agent
resolves it by hand (and the next firing post opens a new incident).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from core.logging import get_logger
from escalation.incidents import incident_resolve, incidents_active_locked
from escalation.models import Incident, IncidentAlert

log = get_logger(__name__)

MAX_FINGERPRINT = 64
# One alert of a batch: (service, status, fingerprint).
AlertKey = tuple[str, int, str]


def alert_fingerprint(alert: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The alert's identity: its Alertmanager fingerprint, else a hash of its labels."""
    raw = alert.get("fingerprint")
    if isinstance(raw, str) and raw.strip():
        raw = raw.strip()
        if len(raw) <= MAX_FINGERPRINT:
            return raw
        return "h:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:40]
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return "l:" + hashlib.sha256(canonical.encode("utf-8", "replace")).hexdigest()[:40]


def batch_alerts(pairs: Sequence[tuple[str, int]], fingerprints: Sequence[str]) -> list[list[Any]]:
    """What a batch stores: [[service, status, fingerprint], ...] (empty without them)."""
    if not fingerprints:
        return []
    return [[s, c, fp] for (s, c), fp in zip(pairs, fingerprints, strict=True)]


def _keys(raw: Iterable[Sequence[Any]]) -> set[AlertKey]:
    return {(str(s), int(c), str(fp)) for s, c, fp in raw}


def _of_incident(incident: Incident, alerts: Iterable[AlertKey]) -> set[AlertKey]:
    """The alerts whose pair is one of the incident's triggers (as frozen at opening)."""
    pairs = {(t["service"], int(t["status"])) for t in incident.rule_snapshot.get("triggers", [])}
    return {a for a in alerts if (a[0], a[1]) in pairs}


def incident_alerts_firing(
    *, incident: Incident, alerts: Mapping[AlertKey, datetime] | Iterable[AlertKey]
) -> int:
    """Record alerts as firing behind the incident (`alerts`: key -> last seen, or keys).

    Precondition: inside a transaction holding the incident's row lock. Returns how
    many of them belong to the incident.
    """
    now = timezone.now()
    seen = dict(alerts) if isinstance(alerts, Mapping) else dict.fromkeys(alerts, now)
    mine = _of_incident(incident, seen)
    if not mine:
        return 0
    existing = {
        (a.service, a.status, a.fingerprint): a
        for a in IncidentAlert.objects.filter(
            incident=incident, fingerprint__in={fp for _, _, fp in mine}
        )
    }
    new = []
    for key in sorted(mine):
        at = seen[key]
        row = existing.get(key)
        if row is None:
            service, status, fingerprint = key
            new.append(
                IncidentAlert(
                    incident=incident,
                    fingerprint=fingerprint,
                    service=service,
                    status=status,
                    first_seen_at=at,
                    last_seen_at=at,
                )
            )
        elif not row.firing or row.last_seen_at < at:
            row.firing, row.resolved_at = True, None
            row.last_seen_at = max(row.last_seen_at, at)
            row.save(update_fields=["firing", "resolved_at", "last_seen_at"])
    IncidentAlert.objects.bulk_create(new)
    return len(mine)


def incidents_alerts_resolved(
    *, rule_ids: list[int], alerts: Iterable[Sequence[Any]], at: datetime, reason: str
) -> list[int]:
    """Alertmanager reported these alerts resolved: mark them, and resolve each active
    incident of these rules that has no alert left firing. Returns the resolved ids.

    Call inside a transaction (the incidents are locked here, in rule order).
    """
    keys = _keys(alerts)
    resolved = []
    for incident in incidents_active_locked(rule_ids=rule_ids).values():
        mine = _of_incident(incident, keys)
        ended = [
            a.pk
            for a in IncidentAlert.objects.filter(
                incident=incident, firing=True, fingerprint__in={fp for _, _, fp in mine}
            )
            # Not an alert seen firing after this post (a later batch already counted).
            if (a.service, a.status, a.fingerprint) in mine and a.last_seen_at <= at
        ]
        if ended:
            IncidentAlert.objects.filter(pk__in=ended).update(firing=False, resolved_at=at)
        still = list(
            IncidentAlert.objects.filter(incident=incident, firing=True).values_list(
                "fingerprint", flat=True
            )
        )
        if still:
            log.info(
                "incident_alerts_still_firing",
                incident_id=incident.pk,
                rule_id=incident.rule_id,
                firing=still,
                resolved=sorted(fp for _, _, fp in mine),
            )
            continue
        incident_resolve(incident=incident, reason=reason)
        resolved.append(incident.pk)
    return resolved
