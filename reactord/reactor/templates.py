"""Templates: ``{{ path }}`` replaced by the value at that path in the event, and nothing more.

There is no expression language: a template names a path, the value is looked up and put
in its place, once. Values are never scanned again, so event data containing ``{{ 7*7 }}``
stays that text. A template that is a whole value (``"{{ data.count }}"``) keeps the value's
type; inside a longer string, the value is written as text (JSON for maps and lists).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from reactord.base.errors import MasterError
from reactord.protocol.events import Event
from reactord.reactor.paths import MISSING, resolve, validate_path

#: ``{{ path }}``: the inner text is stripped afterwards; a lazy ``\s*...?\s*`` here would
#: take cubic time on a long ``{{`` with no ``}}``.
_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")


class TemplateError(MasterError):
    """A template that names a missing value (or one a target cannot take), when rendered.

    Only rendering raises it, and each caller catches it by name; a template that is not
    well formed is a ``ValueError`` at load, like every other mistake in a rule file."""


@dataclass(frozen=True, slots=True)
class Template:
    """``escape``: the text of each value goes through it (and the result is always text), for
    places where a value must not be read as syntax (a target: ``escape_value``); it raises
    ``TemplateError`` for a value it cannot make harmless."""

    text: str
    whole: tuple[str, ...] | None  # the path, when the template is one whole value
    pieces: tuple[str | tuple[str, ...], ...]
    escape: Callable[[str], str] | None = field(default=None, compare=False)

    def render(self, event: Event) -> Any:
        if self.whole is not None:
            value = _lookup(event, self.whole)
            return value if self.escape is None else self.escape(_text(value))
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
            elif self.escape is not None:
                out.append(self.escape(_text(_lookup(event, piece))))
            else:
                out.append(_text(_lookup(event, piece)))
        return "".join(out)


def _lookup(event: Event, path: tuple[str, ...]) -> Any:
    value = resolve(event, path)
    if value is MISSING:
        raise TemplateError(f"{{{{ {'.'.join(path)} }}}}: the event has no such value")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


def compile_template(text: str, escape: Callable[[str], str] | None = None) -> Template | str:
    """A ``Template`` if ``text`` holds ``{{ }}``, else ``text`` itself; ``ValueError`` if malformed."""
    matches = list(_TEMPLATE.finditer(text))
    if not matches:
        if "{{" in text or "}}" in text:
            raise ValueError(f"unbalanced braces in template {text!r}")
        return text
    if len(matches) == 1 and matches[0].span() == (0, len(text)):
        return Template(text, validate_path(matches[0].group(1).strip(), matched=True), (), escape)
    pieces: list[str | tuple[str, ...]] = []
    last = 0
    for match in matches:
        literal = text[last : match.start()]
        if "{{" in literal or "}}" in literal:
            raise ValueError(f"unbalanced braces in template {text!r}")
        if literal:
            pieces.append(literal)
        pieces.append(validate_path(match.group(1).strip(), matched=True))
        last = match.end()
    tail = text[last:]
    if "{{" in tail or "}}" in tail:
        raise ValueError(f"unbalanced braces in template {text!r}")
    if tail:
        pieces.append(tail)
    return Template(text, None, tuple(pieces), escape)


def compile_value(value: Any) -> Any:
    """Compile every string inside ``value`` (lists and maps are walked; keys stay literal)."""
    if isinstance(value, str):
        return compile_template(value)
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    if isinstance(value, dict):
        return {k: compile_value(v) for k, v in value.items()}
    return value


def render_value(value: Any, event: Event) -> Any:
    """Render what ``compile_value`` made, for one event."""
    if isinstance(value, Template):
        return value.render(event)
    if isinstance(value, list):
        return [render_value(v, event) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, event) for k, v in value.items()}
    return value


def paths_in(value: Any) -> Iterator[tuple[str, ...]]:
    """Every path the templates inside ``value`` name (walking lists, maps and dataclasses,
    such as an action's parameters), for checks at load."""
    if isinstance(value, Template):
        if value.whole is not None:
            yield value.whole
        yield from (piece for piece in value.pieces if isinstance(piece, tuple))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from paths_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from paths_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for part in dataclasses.fields(value):
            yield from paths_in(getattr(value, part.name))
