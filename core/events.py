"""The per-organization realtime event log.

Every event gets an id from a per-organization counter, is appended to a capped
Redis stream (for replay after a disconnect) and published on the organization's
pub/sub channel (for live delivery), all in one Lua script: the order of ids is the
order of delivery, whichever process publishes.

After a Redis restart the counter is re-seeded from the clock (ids stay
increasing) and the `base` key records where the new log starts: a client that
resumes from an id before `base` is told to resync, because what happened during
the outage cannot be replayed. The counter is also seeded when a websocket joins an
organization that has none yet (`event_log_open`), so the first `hello` of a new
organization names a real position, from which a resume replays every event.

A Redis failover that loses the old primary's last writes is treated the same way:
the log's `epoch` (the replication id of the primary that keeps it) no longer
matches the server's, so the counter is re-seeded above every id handed out
before, and every client resuming from before the failover is told to resync
instead of missing the event that got a lost event's id (see `_SEED`).

Keys: `events:{<organization id>}:seq|log|base|epoch` and the channel `...:live`. The
`{...}` hash tag keeps one organization's keys in one Redis Cluster slot, so every
script and transaction here touches one node (tests/core/test_cluster_eventlog.py).

`publish_on_commit` is the only way to publish (`publish_many_on_commit` for events of
one change, e.g. a new message and its desk: one Redis round trip for all of them). It
runs after the database commit, so nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from prometheus_client import Counter
from redis.commands.core import Script

from core.logging import get_logger
from core.redis import get_redis

log = get_logger(__name__)

EVENT_TYPES = frozenset(
    {
        "update_helpdesk",
        "delete_helpdesk",
        "new_message",
        "update_message",
        "assistance_requested",
        "assistance_accepted",
        "incident_opened",
        "incident_escalated",
        "incident_acknowledged",
        "incident_resolved",
        "mailing_progress",
        "mailing_finished",
        # the console (issue 13): private notes, and one agent's read marker (their tabs)
        "new_note",
        "help_desk_read",
        # a mailing created or edited, whole (mailing/representations.py)
        "update_mailing",
        # an external service's event, processed or a duplicate (mailing/representations.py)
        "event_received",
    }
)
EVENTS_PUBLISHED = Counter(
    "events_published_total", "Realtime events appended to the log", ["type"]
)
EVENTS_PUBLISH_FAILED = Counter(
    "events_publish_failed_total", "Realtime events lost because Redis refused them", ["type"]
)

# Seed for the counter when it is missing (first use, or after a Redis restart):
# ten thousand ids per second since 2025-01-01, counted in 100-microsecond steps,
# keeps new ids above any id handed out before the restart (as long as an
# organization averaged fewer than 10,000 events/s since its counter was seeded),
# and below 2**53 (exact in JavaScript) for centuries. Whole seconds were not
# enough: a reset within the second of the first seed handed out the same ids again.
#
# The epoch (KEYS[5]) is the replication id of the primary that keeps the log. A
# failover promotes a replica that may lack the last writes of the old primary: an
# event a client already saw is gone and its id would be handed out again, so that
# client, resuming after it, would skip the new event without being told. The
# promoted replica has a replication id of its own (INFO replication, master_replid),
# while the epoch it holds is the old primary's: on a mismatch the counter is
# re-seeded like after a restart (never below where it stands, plus a margin for
# writes that never arrived), and `base` makes every resume from before it a resync.
# An epoch missing beside an existing counter (a log from before epochs) is adopted.
_SEED = """
local info = redis.call('INFO', 'replication')
local epoch = string.match(info, 'master_replid:(%w+)') or ''
local function clock()
  local t = redis.call('TIME')
  return (tonumber(t[1]) - 1735689600) * 10000 + math.floor(tonumber(t[2]) / 100)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local seed = clock()
  redis.call('SET', KEYS[1], string.format('%d', seed))
  redis.call('SET', KEYS[3], string.format('%d', seed + 1))
  redis.call('SET', KEYS[5], epoch)
else
  local held = redis.call('GET', KEYS[5])
  if held == false then
    redis.call('SET', KEYS[5], epoch)
  elseif held ~= epoch then
    local seed = math.max(clock(), tonumber(redis.call('GET', KEYS[1])) + 100000)
    redis.call('SET', KEYS[1], string.format('%d', seed))
    redis.call('SET', KEYS[3], string.format('%d', seed + 1))
    redis.call('SET', KEYS[5], epoch)
  end
end
"""
# ARGV: the retention, then each event's frame head and tail. Consecutive ids (the
# script runs alone), one PUBLISH per event, in the order given. Returns the last id.
_APPEND = (
    _SEED
    + """
local id
for i = 2, #ARGV, 2 do
  id = redis.call('INCR', KEYS[1])
  local sid = string.format('%d', id)
  local frame = ARGV[i] .. sid .. ARGV[i + 1]
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], sid .. '-0', 'f', frame)
  redis.call('PUBLISH', KEYS[4], sid .. ' ' .. frame)
end
return id
"""
)
# Where the log stands, seeding it first if it has no counter yet (see event_log_open).
_OPEN = _SEED + "return redis.call('GET', KEYS[1])\n"


_SCRIPTS: dict[str, Script] = {}


def _script(source: str) -> Script:
    """`source` as a redis-py Script on the current client: EVALSHA, which sends 40 bytes
    where EVAL sent the whole ~1 KiB script and made Redis hash it on every append; a
    server that does not know it (restarted, or a promoted replica) gets it loaded
    again by redis-py (NOSCRIPT -> SCRIPT LOAD -> EVALSHA)."""
    client = get_redis()
    script = _SCRIPTS.get(source)
    if script is None or script.registered_client is not client:
        script = _SCRIPTS[source] = client.register_script(source)
    return script


def _keys(organization_id: int) -> tuple[str, str, str, str]:
    # Built from the integer id only, never from user input. The braces are a Redis
    # Cluster hash tag: an organization's keys share one slot, so each script above
    # (which touches only that organization's keys) runs on one node of a cluster.
    prefix = f"events:{{{int(organization_id)}}}"
    return f"{prefix}:seq", f"{prefix}:log", f"{prefix}:base", f"{prefix}:live"


def _script_keys(organization_id: int) -> tuple[str, str, str, str, str]:
    # The scripts' KEYS: seq, log, base, live and the epoch (see _SEED).
    return (*_keys(organization_id), epoch_key(organization_id))


def epoch_key(organization_id: int) -> str:
    """The replication id of the primary that keeps the organization's log (see _SEED)."""
    return f"events:{{{int(organization_id)}}}:epoch"


def seq_key(organization_id: int) -> str:
    """The organization's id counter (its value is the last event's id)."""
    return _keys(organization_id)[0]


def log_key(organization_id: int) -> str:
    """The organization's stream of logged frames (entry ids `<event id>-0`)."""
    return _keys(organization_id)[1]


def live_channel(organization_id: int) -> str:
    return _keys(organization_id)[3]


def channel_organization(channel: bytes) -> int:
    """The organization of a live channel name (b"events:{<org>}:live")."""
    return int(channel.split(b":", 2)[1].strip(b"{}"))


def _frame_parts(event_type: str, data: str) -> tuple[str, str]:
    # The frame is built here and the id spliced in by the script, so every
    # subscriber sends the exact same bytes without parsing them.
    head = '{"type": ' + json.dumps(event_type) + ', "id": '
    tail = ', "data": ' + json.dumps(data) + "}"
    return head, tail


def serialize(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))


def events_append(*, organization_id: int, events: list[tuple[str, str]]) -> list[int]:
    """Append (type, serialized data) events in order, in one script call, and publish
    them live. Returns their ids. Call after commit."""
    args: list[Any] = [settings.EVENT_RETENTION]
    for event_type, data in events:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        args.extend(_frame_parts(event_type, data))
    last = int(_script(_APPEND)(keys=_script_keys(organization_id), args=args))
    for event_type, _ in events:
        EVENTS_PUBLISHED.labels(event_type).inc()
    return list(range(last - len(events) + 1, last + 1))


def event_append(*, organization_id: int, event_type: str, data: str) -> int:
    """Append one event and publish it live. Returns its id. Call after commit."""
    return events_append(organization_id=organization_id, events=[(event_type, data)])[0]


def event_log_open(*, organization_id: int) -> int:
    """The id of the organization's last event, seeding its counter if it has none.

    Call before telling a client where it stands (the websocket `hello`). An
    organization that never had an event used to say 0, and a client resuming from 0
    was told to resync (0 is also what a client that connected before a Redis restart
    holds, whose missed events are gone). Seeded here, the position is a real one:
    resuming from it replays every event since, and a later re-seed (Redis lost its
    data) starts above it, so that client is still told to resync.
    """
    keys = _script_keys(organization_id)
    return int(_script(_OPEN)(keys=keys))


async def event_log_open_async(client: Any, *, organization_id: int) -> int:
    """`event_log_open` on an asyncio Redis client (the websocket hub's)."""
    return int(await client.eval(_OPEN, 5, *_script_keys(organization_id)))


def publish_on_commit(organization_id: int, event_type: str, data: dict[str, Any]) -> None:
    """Publish `data` (a REST object) to the organization's stream after commit.

    The payload is serialized now, inside the transaction, so the event shows the
    state this transaction wrote, not whatever a later one did.
    """
    publish_many_on_commit(organization_id, [(event_type, data)])


def publish_many_on_commit(organization_id: int, items: list[tuple[str, dict[str, Any]]]) -> None:
    """`publish_on_commit` for several events of one change, in this order: one on-commit
    callback and one Redis round trip for all of them (a new message and its desk cost
    two before). Registered together, they commit or roll back together."""
    for event_type, _ in items:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
    events = [(event_type, serialize(data)) for event_type, data in items]

    def _publish() -> None:
        try:
            events_append(organization_id=organization_id, events=events)
        except Exception as exc:
            # The change is committed; only the notification is lost. Clients that
            # miss it catch up on their next resync. Count it so it is seen.
            for event_type, _ in events:
                EVENTS_PUBLISH_FAILED.labels(event_type).inc()
                log.error(
                    "event_publish_failed",
                    organization_id=organization_id,
                    type=event_type,
                    error=f"{type(exc).__name__}: {exc}",
                )

    transaction.on_commit(_publish)


def ephemeral_frame(event_type: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": event_type, "data": serialize(data)})


def ephemeral_publish(*, organization_id: int, event_type: str, data: dict[str, Any]) -> None:
    """Relay a frame to the organization's live sockets without logging it (no id, no
    replay): `typing` is worthless a second later, so it is not worth a resume."""
    frame = ephemeral_frame(event_type, data)
    # Event id 0 tells the hub it is not part of the log (never de-duplicated).
    get_redis().publish(live_channel(organization_id), "0 " + frame)
    EVENTS_PUBLISHED.labels(event_type).inc()


@dataclass(frozen=True)
class Replay:
    """What a resuming client gets: the frames it missed, or `resync` if they are gone."""

    frames: list[tuple[int, str]]
    resync: bool


def _int(value: bytes | None) -> int | None:
    return int(value) if value is not None else None


def _frame(fields: dict[bytes, bytes] | list[bytes]) -> str:
    # A dict from XRANGE; the raw [field, value] list when redis-py's cluster client ran
    # it in a transaction (it skips the reply parsing there).
    if isinstance(fields, dict):
        return fields[b"f"].decode()
    return dict(zip(fields[::2], fields[1::2], strict=True))[b"f"].decode()


def replay_since(*, organization_id: int, last_event_id: int) -> Replay:
    """Frames with id > last_event_id, in order; `resync` if any is no longer kept."""
    seq, stream, base_key, _ = _keys(organization_id)
    client = get_redis()
    pipe = client.pipeline(transaction=True)
    pipe.get(seq)
    pipe.get(base_key)
    pipe.xrange(stream, min=f"{last_event_id + 1}-0", max="+")
    current_raw, base_raw, entries = pipe.execute()
    current, base = _int(current_raw), _int(base_raw)
    if current is None:
        # Nothing logged since Redis started: a client that saw events saw them
        # before a restart, and whatever happened since cannot be replayed.
        return Replay(frames=[], resync=last_event_id > 0)
    if base is not None and last_event_id < base - 1:
        return Replay(frames=[], resync=True)
    if last_event_id > current:
        return Replay(frames=[], resync=True)
    frames = [(int(eid.split(b"-")[0]), _frame(fields)) for eid, fields in entries]
    if last_event_id < current and (not frames or frames[0][0] != last_event_id + 1):
        return Replay(frames=[], resync=True)  # trimmed away
    return Replay(frames=frames, resync=False)
