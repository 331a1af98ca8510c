"""YAML that remembers where things are and refuses a key given twice: rule and config files.

Every mapping knows the line of each of its keys, and a key given twice in one mapping is an
error at the second one. Rule files read YAML 1.2 booleans (only ``true``/``false``, so ``on:``
is a key); config files keep YAML 1.1's (``yes``/``no`` too), as they always have.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class LineDict(dict[Any, Any]):
    """A mapping from a YAML file, with the line of the mapping and of each key (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML whose mappings are ``LineDict``s with no key given twice."""


class _Loader(_StrictLoader):
    """The same, with YAML 1.2 booleans: only true/false are booleans, so ``on:`` is a key."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a scalar", key_node.start_mark
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


#: The most values a document may stand for once its aliases are followed. An alias is a
#: reference, so ``yaml.load`` itself stays small; but what walks the result (a rule's
#: conditions, a gate's checks) visits each use again, and 25 anchors that each name the
#: previous one twice make 2**25 values out of 1 KB of text.
MAX_EXPANDED = 1_000_000


def load_with_lines(text: str, *, yaml11_booleans: bool = False) -> Any:
    """Parse YAML (safe tags only); raises ``yaml.YAMLError`` with a mark on bad input, and
    when the document stands for more than ``MAX_EXPANDED`` values."""
    value = yaml.load(text, Loader=_StrictLoader if yaml11_booleans else _Loader)
    _check_expanded(value)
    return value


def _check_expanded(value: Any) -> None:
    """Count the values ``value`` stands for, aliases followed, stopping past the bound."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_EXPANDED:
            raise yaml.YAMLError(
                f"the document stands for more than {MAX_EXPANDED:,} values once its aliases are "
                "followed (an anchor used over and over)"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
            count += len(item)
        elif isinstance(item, list):
            stack.extend(item)


def describe_error(exc: yaml.YAMLError) -> tuple[int, str]:
    """The line (1-based; 0 when unknown) and the problem of a YAML error, in one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context}, {problem}" if context else problem
    return (mark.line + 1 if mark is not None else 0), " ".join(text.split())
