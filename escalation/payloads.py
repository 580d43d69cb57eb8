"""Monitoring posts in, their 202 body out: the one parser of `POST /api/triggers/` and
`/api/alertmanager/`, shared by the ASGI fast path (`escalation.fastpath`) and the DRF
views (the serializers in `escalation.serializers` delegate to it and keep only the
OpenAPI schema), so a payload is accepted, normalized and refused the same way on both.

Errors have DRF's shape and messages (the serializers' own before this parser replaced
them): `{"gatilhos": {"0": {"retorno": ["..."]}}}`, `{"triggers": {"non_field_errors":
["This list may not be empty."]}}`. Text fields follow DRF's `CharField`: a string,
number (kept as its text) or nothing else, trimmed, without NUL or lone surrogates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from escalation.alerts import alert_fingerprint
from escalation.ingest import Ingested, Payload
from escalation.rules import Pair

MAX_TRIGGERS = 1000
MAX_SERVICE = 100
MAX_LABEL_NAME = 256
SERVICE_LABELS = ("service", "job")
STATUS_LABELS = ("status", "code", "status_code")

REQUIRED = "This field is required."
NULL = "This field may not be null."
STATUS_INVALID = 'An HTTP status code (100-599), e.g. 503 or "503".'
ONE_LIST = "Send exactly one list: `triggers` (or the seed's `gatilhos`)."
NON_FIELD = "non_field_errors"

Detail = Any  # list[str] | dict[str | int, Detail], as DRF's ValidationError.detail


class PayloadInvalid(Exception):
    """The payload is refused; `fields` are the field errors (DRF's shape)."""

    def __init__(self, fields: dict[str, Detail]) -> None:
        super().__init__("invalid monitoring payload")
        self.fields = fields


class _Invalid(Exception):
    def __init__(self, detail: Detail) -> None:
        self.detail = detail


_ABSENT: Any = object()


# --- DRF's field rules, for the fields these payloads have -----------------------------


def _text(value: Any, *, max_length: int | None = None, allow_blank: bool = False) -> str:
    """CharField(trim_whitespace=True)."""
    if value is None:
        raise _Invalid([NULL])
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(["Not a valid string."])
    text = str(value).strip()
    if not text:
        if allow_blank:
            return ""
        raise _Invalid(["This field may not be blank."])
    errors = []
    if max_length is not None and len(text) > max_length:
        errors.append(f"Ensure this field has no more than {max_length} characters.")
    if "\x00" in text:
        errors.append("Null characters are not allowed.")
    surrogate = next((ord(c) for c in text if 0xD800 <= ord(c) <= 0xDFFF), None)
    if surrogate is not None:
        errors.append(f"Surrogate characters are not allowed: U+{surrogate:X}.")
    if errors:
        raise _Invalid(errors)
    return text


def status_code(value: Any) -> int | None:
    """An HTTP status code from a number or a string of digits (100-599), else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if not text.isdigit() or not 100 <= int(text) <= 599:
        return None
    return int(text)


def _status(value: Any) -> int:
    if value is None:
        raise _Invalid([NULL])
    code = status_code(value)
    if code is None:
        raise _Invalid([STATUS_INVALID])
    return code


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value is None:
        raise _Invalid([NULL])
    if str(value) not in choices:
        raise _Invalid([f'"{value}" is not a valid choice.'])
    return str(value)


def _dict(value: Any) -> Mapping[Any, Any]:
    """DictField."""
    if value is None:
        raise _Invalid([NULL])
    if not isinstance(value, dict):
        raise _Invalid([f'Expected a dictionary of items but got type "{type(value).__name__}".'])
    return value


def _object(value: Any) -> Mapping[str, Any]:
    """A nested serializer's object (the payload itself, an item of a list)."""
    if value is None:
        raise _Invalid([NULL])
    if not isinstance(value, Mapping):
        raise _Invalid(
            {NON_FIELD: [f"Invalid data. Expected a dictionary, but got {type(value).__name__}."]}
        )
    return value


def _many(value: Any, item: Callable[[Any], Any]) -> list[Any]:
    """A nested list (`many=True`, not empty, at most MAX_TRIGGERS); item errors by index."""
    if value is None:
        raise _Invalid([NULL])
    if not isinstance(value, list):
        raise _Invalid(
            {NON_FIELD: [f'Expected a list of items but got type "{type(value).__name__}".']}
        )
    if not value:
        raise _Invalid({NON_FIELD: ["This list may not be empty."]})
    if len(value) > MAX_TRIGGERS:
        raise _Invalid(
            {NON_FIELD: [f"Ensure this field has no more than {MAX_TRIGGERS} elements."]}
        )
    out, errors = [], {}
    for index, raw in enumerate(value):
        try:
            out.append(item(raw))
        except _Invalid as exc:
            errors[index] = exc.detail
    if errors:
        raise _Invalid(errors)
    return out


class _Fields:
    """Reads an object's fields in order, collecting each one's errors."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, Detail] = {}

    def take(self, name: str, parse: Callable[[Any], Any], *, required: bool = True) -> Any:
        value = self.data.get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                self.errors[name] = [REQUIRED]
            return _ABSENT
        try:
            return parse(value)
        except _Invalid as exc:
            self.errors[name] = exc.detail
            return _ABSENT

    def check(self) -> None:
        if self.errors:
            raise _Invalid(self.errors)


def _root(data: Any, parse: Callable[[Mapping[str, Any]], Payload]) -> Payload:
    if data is None:  # a JSON `null` body: DRF's root serializer says so
        raise PayloadInvalid({NON_FIELD: ["No data provided"]})
    try:
        return parse(_object(data))
    except _Invalid as exc:
        detail = exc.detail
        raise PayloadInvalid(detail if isinstance(detail, dict) else {NON_FIELD: detail}) from None


# --- triggers: the seed's `gatilhos` or `triggers` --------------------------------------


def _trigger(service_key: str, status_key: str) -> Callable[[Any], Pair]:
    def parse(raw: Any) -> Pair:
        fields = _Fields(_object(raw))
        service = fields.take(service_key, lambda v: _text(v, max_length=MAX_SERVICE))
        status = fields.take(status_key, _status)
        fields.check()
        return service, status

    return parse


def parse_triggers(data: Any) -> Payload:
    """`{"gatilhos": [{"servico", "retorno"}...]}` or `{"triggers": [{"service",
    "status"}...]}` (exactly one of the two), or PayloadInvalid."""

    def parse(obj: Mapping[str, Any]) -> Payload:
        fields = _Fields(obj)
        seed = fields.take(
            "gatilhos", lambda v: _many(v, _trigger("servico", "retorno")), required=False
        )
        api = fields.take(
            "triggers", lambda v: _many(v, _trigger("service", "status")), required=False
        )
        fields.check()
        if (seed is _ABSENT) == (api is _ABSENT):
            raise _Invalid({"triggers": [ONE_LIST]})
        return Payload(source="seed", firing=seed) if api is _ABSENT else Payload("api", api)

    return _root(data, parse)


# --- Alertmanager (webhook payload version 4) --------------------------------------------


def label_name_error(name: str) -> str | None:
    """Why `name` cannot be a label name, or None. Prometheus 3 allows any UTF-8 name,
    so this refuses only what cannot be stored: empty, too long, NUL, a lone surrogate
    (valid in JSON's \\u escapes, not encodable as UTF-8)."""
    if not name or len(name) > MAX_LABEL_NAME:
        return f"A label name has 1 to {MAX_LABEL_NAME} characters."
    if "\x00" in name:
        return "A label name cannot contain NUL."
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "A label name must be valid Unicode (no lone surrogates)."
    return None


def _labels(value: Any) -> dict[str, str]:
    labels, errors = {}, {}
    for key, raw in _dict(value).items():
        try:
            labels[str(key)] = _text(raw, allow_blank=True)
        except _Invalid as exc:
            errors[str(key)] = exc.detail
    if errors:
        raise _Invalid(errors)
    for name in labels:
        if (error := label_name_error(name)) is not None:
            raise _Invalid([error])
    return labels


def alert_pair(labels: dict[str, str]) -> Pair | str:
    """(service, status) from an alert's labels, or why it cannot be mapped."""
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), None)
    status = next((labels[k] for k in STATUS_LABELS if labels.get(k)), None)
    if service is None:
        return f"no label among {list(SERVICE_LABELS)}"
    if status is None or not status.strip().isdigit() or not 100 <= int(status) <= 599:
        return f"no numeric status code label among {list(STATUS_LABELS)}"
    return service.strip()[:MAX_SERVICE], int(status)


def _optional_text(value: Any) -> str:
    return _text(value, allow_blank=True)


def _alert(raw: Any) -> dict[str, Any]:
    fields = _Fields(_object(raw))
    alert = {
        "status": fields.take("status", lambda v: _choice(v, ("firing", "resolved"))),
        "labels": fields.take("labels", _labels),
        "annotations": fields.take("annotations", _dict, required=False),
        "startsAt": fields.take("startsAt", _optional_text, required=False),
        "endsAt": fields.take("endsAt", _optional_text, required=False),
        "fingerprint": fields.take("fingerprint", _optional_text, required=False),
    }
    fields.check()
    return {k: v for k, v in alert.items() if v is not _ABSENT}


def _version(value: Any) -> str:
    if _text(value) != "4":
        raise _Invalid(["Only payload version 4 is supported."])
    return "4"


def parse_alertmanager(data: Any) -> Payload:
    """A v4 webhook payload: its alerts split into firing and resolved pairs (with each
    alert's identity, escalation/alerts.py) and the unmappable ones, or PayloadInvalid."""

    def parse(obj: Mapping[str, Any]) -> Payload:
        fields = _Fields(obj)
        fields.take("version", _version)
        fields.take("status", lambda v: _choice(v, ("firing", "resolved")))
        fields.take("receiver", _optional_text, required=False)
        fields.take("groupKey", _optional_text, required=False)
        alerts = fields.take("alerts", lambda v: _many(v, _alert))
        fields.check()
        payload = Payload(
            source="alertmanager", firing=[], fingerprints={"firing": [], "resolved": []}
        )
        for index, alert in enumerate(alerts):
            labels, status = alert["labels"], alert["status"]
            pair = alert_pair(labels)
            if isinstance(pair, str):
                payload.ignored.append(
                    {"alert": index, "labels": labels, "reason": pair, "status": status}
                )
                continue
            (payload.firing if status == "firing" else payload.resolved).append(pair)
            payload.fingerprints[status].append(alert_fingerprint(alert, labels))
        return payload

    return _root(data, parse)


# --- the answer -------------------------------------------------------------------------


def ingest_body(results: list[Ingested], received: int, *, alertmanager: bool) -> dict[str, Any]:
    """The 202 body of a monitoring post, the same bytes from the fast path and the view."""
    body: dict[str, Any] = {
        "received": received,
        "batches": [r.batch.pk for r in results],
        "matched": [m for r in results if r.batch.kind == "firing" for m in r.matched],
        "unmatched": [u for r in results if r.batch.kind == "firing" for u in r.unmatched],
    }
    if alertmanager:
        body["resolving"] = [m for r in results if r.batch.kind == "resolved" for m in r.matched]
        body["resolved_unmatched"] = [
            u for r in results if r.batch.kind == "resolved" for u in r.unmatched
        ]
        ignored = [i for r in results for i in r.ignored]
        body["ignored"] = sorted(ignored, key=lambda i: int(i["alert"]))
    return body
