"""The tag index: which rules could match a tag, found without looking at the other rules.

Patterns are split into segments and stored in a trie: literal segments by name, ``*`` in
one child, in-segment globs (``web*``) in a short list, and patterns that continue with
``**`` at the node where the ``**`` starts. A lookup walks the tag's segments, so its cost
follows the tag's depth and the candidates, not the number of rules. The trie only narrows:
every candidate it finds is decided by ``tag_matches``, the one matcher of tag globs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reactord.protocol.tags import segment_regex, tag_matches

T = TypeVar("T")


@dataclass
class _Node(Generic[T]):
    literal: dict[str, _Node[T]] = field(default_factory=dict)
    star: _Node[T] | None = None
    globs: list[tuple[re.Pattern[str], _Node[T]]] = field(default_factory=list)
    deep: list[tuple[str, T]] = field(default_factory=list)  # patterns with ** from here on
    items: list[tuple[str, T]] = field(default_factory=list)


class TagIndex(Generic[T]):
    def __init__(self, entries: Iterable[tuple[str, T]] = ()) -> None:
        self._root: _Node[T] = _Node()
        self._glob_nodes: dict[tuple[int, str], _Node[T]] = {}
        for pattern, item in entries:
            self.add(pattern, item)

    def add(self, pattern: str, item: T) -> None:
        node = self._root
        for segment in pattern.split("/"):
            if "**" in segment:
                node.deep.append((pattern, item))
                return
            if segment == "*":
                node.star = node.star or _Node()
                node = node.star
            elif "*" in segment or "?" in segment:
                key = (id(node), segment)
                child = self._glob_nodes.get(key)
                if child is None:
                    child = self._glob_nodes[key] = _Node()
                    node.globs.append((re.compile(segment_regex(segment)), child))
                node = child
            else:
                node = node.literal.setdefault(segment, _Node())
        node.items.append((pattern, item))

    def candidates(self, tag: str) -> list[T]:
        """Every item whose pattern matches ``tag``, in insertion order per node."""
        found: list[tuple[str, T]] = []
        self._walk(self._root, tag.split("/"), 0, found)
        return [item for pattern, item in found if tag_matches(pattern, tag)]

    def _walk(self, node: _Node[T], segments: list[str], depth: int, found: list[tuple[str, T]]) -> None:
        found.extend(node.deep)
        if depth == len(segments):
            found.extend(node.items)
            return
        segment = segments[depth]
        child = node.literal.get(segment)
        if child is not None:
            self._walk(child, segments, depth + 1, found)
        if node.star is not None:
            self._walk(node.star, segments, depth + 1, found)
        for regex, glob_child in node.globs:
            if regex.fullmatch(segment):
                self._walk(glob_child, segments, depth + 1, found)
