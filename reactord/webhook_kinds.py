"""How each sender's request becomes events: the kinds of webhook endpoint, in one registry.

A kind is one function, ``(request, max_events) -> [Item]``: the events a request becomes
(tag and data) and, where the sender names its deliveries, the key each event is deduplicated
by. It raises ``Refused`` for a request it cannot take (400, 413 or 415), before any event is
made. Everything here reads hostile input: types are checked, sizes bounded, nothing raises
but ``Refused``.

- ``json``: the body (an object) is the data; the tag is ``webhook/<name>[/<path>]``; the key
  is the ``Idempotency-Key`` header (what reactord's own ``webhook`` action sends)
- ``cloudevents``: CloudEvents 1.0 over HTTP in structured, binary or batched mode; the tag is
  ``webhook/<name>/<type>``, the data ``{"ce": {attributes}, "data": ...}``; the key the
  event's ``source`` and ``id``
- ``github``: GitHub's (and Gitea's, Forgejo's) hooks, every event type on one URL; the tag is
  ``webhook/<name>/<X-GitHub-Event>``, the data the payload plus ``github: {event, delivery,
  hook_id}``; the key ``X-GitHub-Delivery``
- ``alertmanager``: one event per alert, ``webhook/<name>/<alertname>/<fingerprint>``, with
  ``status`` firing or resolved; the key the alert's fingerprint, status and ``startsAt``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote

from reactord.base.errors import MasterError

_SEGMENT_SAFE = re.compile(r"[^A-Za-z0-9_.:@=+,~%-]+")
_CE_NAME = re.compile(r"[a-z0-9]{1,64}")  # the spec: lower-case ASCII letters and digits
_JSON_MEDIA = re.compile(r"(application|text)/([a-z0-9.!#$&^_-]+\+)?json")

#: Bounds on what a request may carry besides its body (headers are not counted in max_body).
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_CHARS = 4096
MAX_HEADER_CHARS = 256  # a delivery id, an event name, an idempotency key

CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
#: The attributes every CloudEvents event shows in ``data.ce`` (None when it has none).
CE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema")


class Refused(MasterError):
    """A request the listener answers with ``status`` and ``{"error": reason}``."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Request:
    """An authenticated request: its endpoint, the path after the name (tag segments already
    made safe), its headers and its body."""

    endpoint: str
    path: str
    headers: Message
    body: bytes


@dataclass(frozen=True, slots=True)
class Item:
    """One event a request becomes, with the key its sender gave it (hashed), if any."""

    tag: str
    data: dict[str, Any]
    key: str | None = None


Kind = Callable[[Request, int], list[Item]]


def segment(text: str) -> str:
    """``text`` as one tag segment: other characters become ``_``, at most 64 of them."""
    return _SEGMENT_SAFE.sub("_", text).strip("_")[:64] or "unknown"


def dedupe_key(*parts: str) -> str:
    """A fixed-size key for what a sender names a delivery by (any length, any characters)."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def parse_json(body: bytes, what: str = "the body") -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a huge int, too deep
        raise Refused(400, f"{what} is not JSON: {exc}") from None


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``Application/JSON; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _header(request: Request, name: str) -> str | None:
    """One header's value (None when absent), refused when given twice or too long."""
    values = request.headers.get_all(name) or []
    if len(values) > 1:
        raise Refused(400, f"the header {name} is given {len(values)} times")
    if not values:
        return None
    value = str(values[0]).strip()
    if len(value) > MAX_HEADER_CHARS:
        raise Refused(400, f"the header {name} is over {MAX_HEADER_CHARS} characters")
    return value


# -- json -------------------------------------------------------------------------------------------


def json_items(request: Request, max_events: int) -> list[Item]:
    payload = parse_json(request.body)
    base = f"webhook/{request.endpoint}"
    tag = f"{base}/{request.path}" if request.path else base
    idempotency = _header(request, "Idempotency-Key")
    return [
        Item(
            tag,
            payload if isinstance(payload, dict) else {"body": payload},
            dedupe_key("idempotency", idempotency) if idempotency else None,
        )
    ]


# -- CloudEvents ------------------------------------------------------------------------------------


def cloudevents_items(request: Request, max_events: int) -> list[Item]:
    """Structured mode (the event is the body), binary mode (``ce-*`` headers, the body is the
    data) or batched mode (a JSON array of structured events), as the HTTP binding 1.0 says."""
    content_type = _header(request, "Content-Type")
    media = media_type(content_type)
    if media == CE_BATCH:
        batch = parse_json(request.body)
        if not isinstance(batch, list):
            raise Refused(400, f"a CloudEvents batch ({CE_BATCH}) is a JSON array of events")
        if len(batch) > max_events:
            raise Refused(
                413, f"{len(batch)} events in one batch; at most {max_events} (webhooks.max_events)"
            )
        return [_structured(request, event, f"event {n} of the batch: ") for n, event in enumerate(batch)]
    if media.startswith("application/cloudevents") and media != CE_STRUCTURED:
        raise Refused(
            415,
            f"the CloudEvents format {media[:60]!r} is not supported: send {CE_STRUCTURED}, "
            f"binary mode (ce-* headers) or a batch ({CE_BATCH})",
        )
    binary = media != CE_STRUCTURED and any(k.lower().startswith("ce-") for k in request.headers)
    if binary:
        return [_binary(request, content_type)]
    return [_structured(request, parse_json(request.body), "")]


def _structured(request: Request, event: Any, where: str) -> Item:
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        raise Refused(
            400,
            f"{where}not a CloudEvents 1.0 event in structured JSON mode: send the event as a JSON "
            f"object, binary mode (ce-* headers), or a batch ({CE_BATCH})",
        )
    if len(event) > MAX_ATTRIBUTES + 2:  # data and data_base64 are not attributes
        raise Refused(400, f"{where}more than {MAX_ATTRIBUTES} CloudEvents attributes")
    attributes: dict[str, Any] = {}
    for name, value in event.items():
        if name in ("data", "data_base64") or value is None:  # null: as if absent (JSON format)
            continue
        if not _CE_NAME.fullmatch(name):
            raise Refused(400, f"{where}{name[:64]!r} is not a CloudEvents attribute name (a-z, 0-9)")
        if isinstance(value, str):
            if len(value) > MAX_ATTRIBUTE_CHARS:
                raise Refused(400, f"{where}the attribute {name} is over {MAX_ATTRIBUTE_CHARS} characters")
        elif not isinstance(value, bool | int | float):
            raise Refused(400, f"{where}the attribute {name} is not a string, number or boolean")
        attributes[name] = value
    _check_required(attributes, where)
    if "data_base64" in event and "data" in event:
        raise Refused(400, f"{where}an event has data or data_base64, not both")
    encoded = event.get("data_base64")
    if encoded is None:
        data = {"data": event.get("data")}
    else:
        if not isinstance(encoded, str):
            raise Refused(400, f"{where}data_base64 is not a string")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, f"{where}data_base64 is not base64") from None
        data = _data_of(raw, attributes.get("datacontenttype"), json_by_default=False)
    return _cloudevent(request, attributes, data)


def _binary(request: Request, content_type: str | None) -> Item:
    attributes: dict[str, Any] = {}
    for header, value in request.headers.items():
        name = header.lower()
        if not name.startswith("ce-"):
            continue
        if len(attributes) >= MAX_ATTRIBUTES:
            raise Refused(400, f"more than {MAX_ATTRIBUTES} ce-* headers")
        attribute = name[3:]
        if not _CE_NAME.fullmatch(attribute) or attribute in ("data", "datacontenttype"):
            raise Refused(
                400,
                f"{header[:70]!r} is not a CloudEvents attribute header (the data's type goes in "
                "Content-Type)",
            )
        if attribute in attributes:
            raise Refused(400, f"the header {header} is given twice")
        attributes[attribute] = _header_value(header, str(value))
    if content_type:
        attributes["datacontenttype"] = content_type
    _check_required(attributes, "")
    return _cloudevent(request, attributes, _data_of(request.body, content_type, json_by_default=True))


def _header_value(header: str, value: str) -> str:
    """A ``ce-*`` header's value: printable ASCII, percent-decoded to UTF-8 (HTTP binding 3.1.3.2)."""
    value = value.strip()
    if not value.isascii():
        raise Refused(400, f"the header {header} is not ASCII: percent-encode it (CloudEvents HTTP binding)")
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, f"the header {header} is not UTF-8 once percent-decoded") from None
    if len(decoded) > MAX_ATTRIBUTE_CHARS:
        raise Refused(400, f"the header {header} is over {MAX_ATTRIBUTE_CHARS} characters")
    return decoded


def _check_required(attributes: dict[str, Any], where: str) -> None:
    if attributes.get("specversion") != "1.0":
        version = str(attributes.get("specversion"))[:20]
        raise Refused(400, f"{where}not a CloudEvents 1.0 event (specversion {version!r})")
    missing = [
        k for k in ("id", "source", "type") if not isinstance(attributes.get(k), str) or not attributes[k]
    ]
    if missing:
        raise Refused(400, f"{where}CloudEvents attributes missing: {', '.join(missing)}")


def _data_of(raw: bytes, content_type: Any, *, json_by_default: bool) -> dict[str, Any]:
    """An event's data bytes as event data: parsed for a JSON media type, text when UTF-8,
    else ``{"data_base64": ...}`` (the CloudEvents JSON format's own name for it)."""
    if not raw:
        return {"data": None}
    media = media_type(content_type if isinstance(content_type, str) else None)
    if _JSON_MEDIA.fullmatch(media) or (not media and json_by_default):
        try:
            return {"data": json.loads(raw)}
        except (ValueError, RecursionError) as exc:
            if media:
                raise Refused(400, f"the data is not JSON ({media}): {exc}") from None
    try:
        return {"data": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(raw).decode("ascii")}


def _cloudevent(request: Request, attributes: dict[str, Any], data: dict[str, Any]) -> Item:
    ce = {name: attributes.get(name) for name in CE_ATTRIBUTES}
    ce.update(attributes)  # the extensions (traceparent, ...) after the spec's own
    return Item(
        f"webhook/{request.endpoint}/{segment(attributes['type'])}",
        {"ce": ce, **data},
        dedupe_key("cloudevents", attributes["source"], attributes["id"]),
    )


# -- GitHub -----------------------------------------------------------------------------------------


def github_items(request: Request, max_events: int) -> list[Item]:
    """GitHub sends every event type to one URL and names it in ``X-GitHub-Event``; a
    redelivery keeps its ``X-GitHub-Delivery``. Both content types GitHub offers are read."""
    event = _header(request, "X-GitHub-Event")
    if not event:
        raise Refused(400, "no X-GitHub-Event header: not a GitHub delivery")
    delivery = _header(request, "X-GitHub-Delivery")
    media = media_type(_header(request, "Content-Type"))
    if media == "application/x-www-form-urlencoded":
        payload = parse_json(_form_payload(request.body), "the payload field")
    elif not media or _JSON_MEDIA.fullmatch(media):
        payload = parse_json(request.body)
    else:
        raise Refused(415, f"the content type {media[:60]!r} is not read: set the hook's to application/json")
    if not isinstance(payload, dict):
        raise Refused(400, "a GitHub payload is a JSON object")
    github = {"event": event, "delivery": delivery, "hook_id": _header(request, "X-GitHub-Hook-ID")}
    return [
        Item(
            f"webhook/{request.endpoint}/{segment(event)}",
            {**payload, "github": github},
            dedupe_key("github", delivery) if delivery else None,
        )
    ]


def _form_payload(body: bytes) -> bytes:
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=16, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, f"the body is not a form: {exc}") from None
    payload = fields.get("payload", [])
    if len(payload) != 1:
        raise Refused(400, "a form body needs one payload field (payload=<JSON>)")
    return payload[0].encode()


# -- Alertmanager -----------------------------------------------------------------------------------


def alertmanager_items(request: Request, max_events: int) -> list[Item]:
    payload = parse_json(request.body)
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise Refused(400, "not an Alertmanager webhook (no alerts list)")
    alerts = payload["alerts"]
    if len(alerts) > max_events:
        raise Refused(413, f"{len(alerts)} alerts in one request; at most {max_events} (webhooks.max_events)")
    common = {k: payload.get(k) for k in ("receiver", "groupKey", "externalURL")}
    items = []
    for alert in alerts:
        if not isinstance(alert, dict):
            raise Refused(400, "an alert is not an object")
        labels = alert.get("labels")
        if labels is not None and not isinstance(labels, dict):
            raise Refused(400, "an alert's labels are not an object")
        status = alert.get("status")
        if not isinstance(status, str):
            status = payload["status"] if isinstance(payload.get("status"), str) else "unknown"
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            fingerprint = _labels_fingerprint(labels or {})
        name = (labels or {}).get("alertname")
        data = {k: alert.get(k) for k in ("annotations", "startsAt", "endsAt", "generatorURL")}
        starts = alert.get("startsAt")
        items.append(
            Item(
                f"webhook/{request.endpoint}/{segment(name if isinstance(name, str) else '')}/"
                f"{segment(fingerprint)}",
                {"status": status, "labels": labels, **data, "fingerprint": fingerprint, **common},
                dedupe_key("alertmanager", fingerprint, status, starts if isinstance(starts, str) else ""),
            )
        )
    return items


def _labels_fingerprint(labels: dict[str, Any]) -> str:
    """For an alert sent without its fingerprint: 16 hex digits, the same for the same labels."""
    try:
        canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        raise Refused(400, "an alert's labels cannot be read") from None
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


#: The kinds an endpoint may be (``webhooks.endpoints.<name>.kind``).
KINDS: dict[str, Kind] = {
    "json": json_items,
    "cloudevents": cloudevents_items,
    "github": github_items,
    "alertmanager": alertmanager_items,
}
