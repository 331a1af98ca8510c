"""Action specs: the ``do:`` list of a rule, validated at load and rendered per event.

Kinds: ``run`` (a function on minions, as a job), ``fire`` (a new event), ``webhook`` (an
HTTP request), ``exec`` (a local program, argv only, never a shell) and ``log``. Every
action has ``timeout``, ``retry: {attempts, backoff, max_backoff, jitter}`` and an optional
``lock`` (a template: actions with the same rendered lock run one at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactord.base.batching import parse_batch
from reactord.base.errors import TargetError
from reactord.base.targeting import TARGET_TYPES, compile_target, escape_value
from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import TagError
from reactord.protocol.events import Event
from reactord.protocol.messages import valid_function_name
from reactord.protocol.tags import RESERVED_PREFIX, validate_tag
from reactord.reactor.gatechecks import GateError, compile_checks
from reactord.reactor.templates import (
    Template,
    TemplateError,
    compile_template,
    compile_value,
    render_value,
)

COMMON = ("timeout", "retry", "lock", "name")


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int = 1
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.1

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds before try ``attempt + 1`` (``attempt`` starts at 1); ``rand`` in [0, 1)."""
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return float(base * (1 + self.jitter * (2 * rand - 1)))


@dataclass(frozen=True, slots=True)
class ActionSpec:
    kind: str
    index: int
    params: dict[str, Any]  # compiled: templates inside
    timeout: float
    retry: Retry
    lock: Template | str | None
    line: int
    label: str
    title: Template | None = None  # the label's text with templates, rendered per event

    def label_for(self, event: Event) -> str:
        """The label with the event's values in it (as written where a value is missing)."""
        if self.title is None:
            return self.label
        try:
            return _brief(str(self.title.render(event)), 80)
        except TemplateError:
            return self.label

    def written_targets(self) -> list[tuple[str, str, str]]:
        """(key, target, target type) of each target written out (not a template) in this action."""
        out = []
        target, gate = self.params.get("target"), self.params.get("gate")
        if self.kind == "run" and isinstance(target, str):
            out.append(("target", target, self.params["target_type"]))
        if isinstance(gate, dict) and gate.get("target") is not None:
            out.append(("gate.target", gate["target"], gate["target_type"]))
        return out

    def render(self, event: Event) -> dict[str, Any]:
        """The parameters for one event (raises ``TemplateError`` when a value is missing)."""
        rendered = render_value(self.params, event)
        assert isinstance(rendered, dict)
        return rendered

    def lock_key(self, event: Event) -> str | None:
        if self.lock is None:
            return None
        value = render_value(self.lock, event)
        return value if isinstance(value, str) else str(value)


def _str_template(value: Any, what: str, escape: Callable[[str], str] | None = None) -> Template | str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: expected text")
    return compile_template(value, escape)


def _target_escape(target_type: str) -> Callable[[str], str]:
    """Values from the event are matched literally in a target, and cannot change its shape."""

    def escape(value: str) -> str:
        try:
            return escape_value(value, target_type)
        except TargetError as exc:
            raise TemplateError(str(exc)) from None

    return escape


def _target_type(value: Any, key: str) -> str:
    if value not in TARGET_TYPES:
        raise ValueError(f"{key}: expected one of {', '.join(TARGET_TYPES)}")
    return str(value)


def _check_target(target: Template | str, target_type: str, key: str) -> None:
    """A target written out in the rule is compiled now (nodegroup names are checked against
    master.yaml when the master loads the rules); a template is compiled per event."""
    if isinstance(target, str):
        try:
            compile_target(target, target_type, syntax_only=True)
        except TargetError as exc:
            raise ValueError(f"{key}: {exc}") from None


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    fun = spec["run"]
    if not isinstance(fun, str) or not valid_function_name(fun):
        raise ValueError(f"run: {fun!r} is not a function name like service.restart")
    target_type = _target_type(spec.get("target_type", "glob"), "target_type")
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list):
        raise ValueError("args: expected a list")
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs: expected a mapping")
    target = _str_template(spec.get("target", "{{ source }}"), "target", _target_escape(target_type))
    _check_target(target, target_type, "target")
    out = {
        "fun": fun,
        "target": target,
        "target_type": target_type,
        "args": compile_value(args),
        "kwargs": compile_value(kwargs),
    }
    if "batch" in spec:
        wait = parse_duration(spec.get("batch_wait", 0))
        failhard = spec.get("failhard", False)
        if not isinstance(failhard, bool):
            raise ValueError("failhard: expected true or false")
        try:
            out["batch"] = parse_batch(spec["batch"], wait=wait, failhard=failhard).public()
        except ValueError as exc:
            raise ValueError(f"batch: {exc}") from None
    elif "batch_wait" in spec or "failhard" in spec:
        raise ValueError("batch_wait and failhard go with batch:")
    if "gate" in spec:
        out["gate"] = parse_gate(spec["gate"])
    return out


def parse_gate(value: Any) -> dict[str, Any]:
    """``gate: {on, when, target, target_type, allow_stale}`` (or ``checks: [{on, when}, ...]``)."""
    if not isinstance(value, dict):
        raise ValueError("gate: expected {on: TAG_GLOB, when: {...}} or {checks: [...]}")
    extra = set(value) - {"on", "when", "checks", "target", "target_type", "allow_stale"}
    if extra:
        raise ValueError(f"gate: unknown key {sorted(extra)[0]!r}")
    if "checks" in value and ("on" in value or "when" in value):
        raise ValueError("gate: give checks: [...] or on/when, not both")
    groups = value["checks"] if "checks" in value else [{k: value[k] for k in ("on", "when") if k in value}]
    target = value.get("target")
    if target is not None and (not isinstance(target, str) or "{{" in target):
        raise ValueError("gate.target: expected a target like 'web*' (templates are not supported here)")
    target_type = _target_type(value.get("target_type", "glob"), "gate.target_type")
    if target is not None:
        _check_target(target, target_type, "gate.target")
    try:
        compile_checks(groups)
    except GateError as exc:
        raise ValueError(f"gate: {exc}") from None
    allow_stale = value.get("allow_stale", False)
    if not isinstance(allow_stale, bool):
        raise ValueError("gate.allow_stale: expected true or false")
    return {
        "checks": groups,
        "target": target,
        "target_type": target_type,
        "allow_stale": allow_stale,
    }


def _fire(spec: dict[str, Any]) -> dict[str, Any]:
    tag = _str_template(spec["fire"], "fire")
    if isinstance(tag, str):
        try:
            validate_tag(tag)
        except TagError as exc:
            raise ValueError(f"fire: {exc}") from None
    text = tag if isinstance(tag, str) else tag.text
    if text.startswith(RESERVED_PREFIX):
        raise ValueError(f"fire: tags under {RESERVED_PREFIX} belong to the master")
    data = spec.get("data", {})
    if not isinstance(data, dict):
        raise ValueError("data: expected a mapping")
    return {"tag": tag, "data": compile_value(data)}


def _webhook(spec: dict[str, Any]) -> dict[str, Any]:
    url = _str_template(spec["webhook"], "webhook")
    text = url if isinstance(url, str) else url.text
    if not text.startswith(("http://", "https://")):
        raise ValueError("webhook: the URL must start with http:// or https://")
    method = spec.get("method", "POST")
    if method not in ("POST", "PUT", "PATCH"):
        raise ValueError("method: expected POST, PUT or PATCH")
    headers = spec.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("headers: expected a mapping of text values")
    return {
        "url": url,
        "method": method,
        "headers": compile_value(headers),
        "body": compile_value(spec["body"]) if "body" in spec else None,
    }


def _exec(spec: dict[str, Any]) -> dict[str, Any]:
    argv = spec["exec"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
        raise ValueError("exec: expected a list of program and arguments (argv; no shell)")
    env = spec.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ValueError("env: expected a mapping of text values")
    cwd = spec.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ValueError("cwd: expected a path")
    return {"argv": compile_value(argv), "env": compile_value(env), "cwd": cwd}


def _log(spec: dict[str, Any]) -> dict[str, Any]:
    level = spec.get("level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("level: expected debug, info, warning or error")
    return {"message": _str_template(spec["log"], "log"), "level": level}


#: kind -> (its own keys, the parser of its parameters, its default timeout)
KINDS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], dict[str, Any]], float]] = {
    "run": (
        ("run", "target", "target_type", "args", "kwargs", "gate", "batch", "batch_wait", "failhard"),
        _run,
        30.0,
    ),
    "fire": (("fire", "data"), _fire, 5.0),
    "webhook": (("webhook", "method", "headers", "body"), _webhook, 10.0),
    "exec": (("exec", "env", "cwd"), _exec, 60.0),
    "log": (("log", "level"), _log, 5.0),
}


def parse_action(spec: Any, index: int) -> ActionSpec:
    if not isinstance(spec, dict):
        raise ValueError("an action is a mapping like {run: test.ping} or {fire: a/tag}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise ValueError(f"an action needs exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    own, parse, default_timeout = KINDS[kind]
    for key in spec:
        if key not in own and key not in COMMON:
            raise ValueError(f"{key}: unknown key for a {kind} action")
    params = parse(spec)
    timeout = parse_duration(spec.get("timeout", default_timeout))
    if timeout <= 0:
        raise ValueError("timeout: must be more than 0s")
    retry = _retry(spec.get("retry", {}))
    lock = _str_template(spec["lock"], "lock") if "lock" in spec else None
    text = str(spec.get("name") or f"{kind} {_joined(spec[kind])}")
    try:
        title = compile_template(text) if "{{" in text else None
    except ValueError:
        title = None  # a label is only shown: braces that are no template stay as they are
    return ActionSpec(
        kind,
        index,
        params,
        timeout,
        retry,
        lock,
        getattr(spec, "line", 0),
        _brief(text, 80),
        title if isinstance(title, Template) else None,
    )


def _retry(value: Any) -> Retry:
    if not isinstance(value, dict) or set(value) - {"attempts", "backoff", "max_backoff", "jitter"}:
        raise ValueError("retry: expected {attempts, backoff, max_backoff, jitter}")
    attempts = value.get("attempts", 1)
    if type(attempts) is not int or not 1 <= attempts <= 100:
        raise ValueError("retry.attempts: expected an integer from 1 to 100")
    jitter = value.get("jitter", 0.1)
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
        raise ValueError("retry.jitter: expected a fraction from 0 to 1")
    return Retry(
        attempts=attempts,
        backoff=parse_duration(value.get("backoff", 1.0)),
        max_backoff=parse_duration(value.get("max_backoff", 60.0)),
        jitter=float(jitter),
    )


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _brief(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
