"""Action specs: the ``do:`` list of a rule, validated at load and rendered per event.

Every action has one kind, named by its key (``run: test.ping``, ``fire: a/tag``), and the
common keys ``timeout``, ``retry: {attempts, backoff, max_backoff, jitter}``, an optional
``lock`` (a template: actions with the same rendered lock run one at a time) and ``name``.

The kinds themselves are not known here: the rule loader is given them (``KindParser``: a
kind's name, its own keys, its default timeout and the parser of its parameters), and the
shipped ones live with their execution in ``reactord.actions.kinds``. A parser returns its
kind's ``ActionParams``, a frozen dataclass whose values may hold templates; rendered for an
event it is the same dataclass with the event's values in, recorded as a plain mapping (the
audit's ``params``, a dead letter's) and read back from one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, Self

from reactord.base.errors import TargetError
from reactord.base.targeting import TARGET_TYPES, compile_target, escape_value
from reactord.protocol.durations import parse_duration
from reactord.protocol.events import Event
from reactord.reactor.templates import (
    Template,
    TemplateError,
    compile_template,
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
class ActionParams:
    """An action kind's parameters; each kind subclasses it (a frozen dataclass of its own).

    The fields are the record's keys, in the order they render in. A field whose default is
    None is optional: left out of the record while it is None, as the rule left it out.
    """

    def render(self, event: Event) -> Self:
        """The parameters for one event (raises ``TemplateError`` when a value is missing)."""
        return replace(self, **{f.name: render_value(getattr(self, f.name), event) for f in fields(self)})

    def record(self) -> dict[str, Any]:
        """The parameters as a plain mapping: what the audit and the dead letters keep."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not (f.default is None and getattr(self, f.name) is None)
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """Rendered parameters read back from their record (a dead letter tried again)."""
        return cls(**record)

    def written_targets(self) -> list[tuple[str, str, str]]:
        """(key, target, target type) of each target written out (not a template): the master
        compiles them against its nodegroups when it loads the rules."""
        return []


class KindParser(Protocol):
    """An action kind as the rule loader sees it (``reactord.actions.kinds`` holds them)."""

    @property
    def name(self) -> str:
        """The key that names the kind in an action (``run``), and the kind's name."""
        ...

    @property
    def keys(self) -> tuple[str, ...]:
        """The kind's own keys, ``name`` included; any other key but ``COMMON`` is an error."""
        ...

    @property
    def default_timeout(self) -> float: ...

    def parse(self, spec: Mapping[str, Any]) -> ActionParams:
        """The action's mapping -> its parameters; ``ValueError`` says what is wrong, starting
        with the key (``target: expected text``)."""
        ...


@dataclass(frozen=True, slots=True)
class ActionSpec:
    kind: str
    index: int
    params: ActionParams  # compiled: templates inside
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
        return self.params.written_targets()

    def render(self, event: Event) -> dict[str, Any]:
        """The parameters for one event, as recorded (raises ``TemplateError`` when a value is
        missing)."""
        return self.params.render(event).record()

    def lock_key(self, event: Event) -> str | None:
        if self.lock is None:
            return None
        value = render_value(self.lock, event)
        return value if isinstance(value, str) else str(value)


def parse_action(spec: Any, index: int, kinds: Mapping[str, KindParser]) -> ActionSpec:
    """One entry of ``do:``; ``ValueError`` says what is wrong (the loader adds file and line)."""
    if not isinstance(spec, dict):
        raise ValueError("an action is a mapping like {run: test.ping} or {fire: a/tag}")
    named = [k for k in kinds if k in spec]
    if len(named) != 1:
        raise ValueError(f"an action needs exactly one of {', '.join(kinds)}")
    kind = kinds[named[0]]
    for key in spec:
        if key not in kind.keys and key not in COMMON:
            raise ValueError(f"{key}: unknown key for a {kind.name} action")
    params = kind.parse(spec)
    timeout = parse_duration(spec.get("timeout", kind.default_timeout))
    if timeout <= 0:
        raise ValueError("timeout: must be more than 0s")
    retry = _retry(spec.get("retry", {}))
    lock = text_template(spec["lock"], "lock") if "lock" in spec else None
    text = str(spec.get("name") or f"{kind.name} {_joined(spec[kind.name])}")
    try:
        title = compile_template(text) if "{{" in text else None
    except ValueError:
        title = None  # a label is only shown: braces that are no template stay as they are
    return ActionSpec(
        kind.name,
        index,
        params,
        timeout,
        retry,
        lock,
        getattr(spec, "line", 0),
        _brief(text, 80),
        title if isinstance(title, Template) else None,
    )


# -- for the kinds' parsers ----------------------------------------------------------------------


def text_template(value: Any, what: str, escape: Callable[[str], str] | None = None) -> Template | str:
    """Text that may hold templates; ``ValueError`` (naming ``what``) for anything else."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: expected text")
    return compile_template(value, escape)


def target_escape(target_type: str) -> Callable[[str], str]:
    """Values from the event are matched literally in a target, and cannot change its shape."""

    def escape(value: str) -> str:
        try:
            return escape_value(value, target_type)
        except TargetError as exc:
            raise TemplateError(str(exc)) from None

    return escape


def target_type(value: Any, key: str) -> str:
    if value not in TARGET_TYPES:
        raise ValueError(f"{key}: expected one of {', '.join(TARGET_TYPES)}")
    return str(value)


def check_target(target: Template | str, target_type: str, key: str) -> None:
    """A target written out in the rule is compiled now (nodegroup names are checked against
    master.yaml when the master loads the rules); a template is compiled per event."""
    if isinstance(target, str):
        try:
            compile_target(target, target_type, syntax_only=True)
        except TargetError as exc:
            raise ValueError(f"{key}: {exc}") from None


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
