"""Tags: slash-separated event types, their namespaces, and tag globs.

A tag is at most 256 characters of segments like ``minion/web01/beacon/load``. In a pattern,
``*`` is one whole segment, ``**`` is any number of segments (zero included, so ``a/**``
matches ``a``), and inside a segment ``*`` and ``?`` match within that segment only (``web*``
matches ``web01``).

``tag_matches`` is the one decision on a glob, wherever a glob is taken: rules, ``event
list`` and ``event replay``, ``state``, ``gate`` and ``event watch``. Indexes and queries may
narrow the candidates first (``literal_prefix``), never decide.
"""

from __future__ import annotations

import re
from functools import lru_cache

from reactord.protocol.errors import TagError

MAX_TAG = 256
MAX_SEGMENTS = 32
_SEGMENT = re.compile(r"[A-Za-z0-9_.:@=+,~%-]+")
_PATTERN_SEGMENT = re.compile(r"[A-Za-z0-9_.:@=+,~%*?-]+")
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: Tags the master owns; no minion may emit them.
RESERVED_PREFIX = "reactor/"


_TAG = re.compile(r"[A-Za-z0-9_.:@=+,~%-]+(?:/[A-Za-z0-9_.:@=+,~%-]+){0,31}")


_SEEN: dict[str, None] = {}  # tags already found valid (they repeat: one per minion and beacon)


def validate_tag(tag: object) -> str:
    """Return ``tag`` if it is a well-formed tag, else raise ``TagError`` saying why."""
    if tag in _SEEN:
        return tag  # type: ignore[return-value,unused-ignore]
    if isinstance(tag, str) and len(tag) <= MAX_TAG and _TAG.fullmatch(tag):
        if len(_SEEN) >= 65536:
            _SEEN.clear()
        _SEEN[tag] = None
        return tag
    if not isinstance(tag, str) or not tag:
        raise TagError("a tag must be a non-empty string")
    if len(tag) > MAX_TAG:
        raise TagError(f"tag longer than {MAX_TAG} characters")
    segments = tag.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise TagError(f"tag with more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise TagError(f"bad tag segment {segment!r} in {tag!r}")
    return tag


def is_valid_segment(value: object) -> bool:
    """One tag segment (what a beacon name or a subject becomes)."""
    return isinstance(value, str) and _SEGMENT.fullmatch(value) is not None


def is_valid_minion_id(value: object) -> bool:
    return isinstance(value, str) and _MINION_ID.fullmatch(value) is not None


def validate_minion_id(value: object) -> str:
    if not is_valid_minion_id(value):
        raise TagError(
            f"bad minion id {value!r}: use letters, digits, '.', '_' or '-' "
            "(128 at most, starting with a letter or digit)"
        )
    assert isinstance(value, str)
    return value


def minion_prefix(minion_id: str) -> str:
    return f"minion/{minion_id}/"


def in_minion_namespace(minion_id: str, tag: str) -> bool:
    """True when ``tag`` lies under ``minion/<minion_id>/``, the only place that minion may emit."""
    return tag.startswith(minion_prefix(minion_id)) and len(tag) > len(minion_prefix(minion_id))


def localize(minion_id: str, tag: str) -> str:
    """Put a tag a minion emits under its own namespace (a tag already there is kept)."""
    validate_tag(tag)
    if in_minion_namespace(minion_id, tag):
        return tag
    return validate_tag(minion_prefix(minion_id) + tag)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    """The regex of a tag glob, run on ``"/" + tag`` so that every segment is ``/`` and its text.

    Tags come from the network, so the regex must not backtrack on them: a glob is matched
    like ``fnmatch`` matches text, a run of whole segments between two ``**`` being placed at
    its first fit by an atomic group (the ``**`` after it absorbs what a later fit would skip),
    and likewise each chunk between two ``*`` inside a segment (``segment_regex``).
    """
    if not pattern or len(pattern) > MAX_TAG:
        raise TagError(f"bad tag pattern {pattern!r}")
    runs: list[list[str]] = [[]]  # the segment globs between the ** of the pattern
    for segment in pattern.split("/"):
        if segment == "**":
            if runs[-1] or len(runs) == 1:  # ** twice in a row is one **
                runs.append([])
            continue
        if not _PATTERN_SEGMENT.fullmatch(segment) or "**" in segment:
            raise TagError(f"bad segment {segment!r} in tag pattern {pattern!r}")
        # (?![^/]): the glob ends where the tag's segment ends
        runs[-1].append("/" + segment_regex(segment) + "(?![^/])")
    out = ["".join(runs[0])]
    for run in runs[1:-1]:
        out.append("(?>(?:/[^/]+)*?" + "".join(run) + ")")
    if len(runs) > 1:
        out.append("(?:/[^/]+)*" + "".join(runs[-1]))
    return re.compile("".join(out))


def segment_regex(segment: str) -> str:
    """The regex of one pattern segment (no slashes): ``*`` and ``?`` stay inside it.

    Each chunk between two ``*`` is placed at its first fit in an atomic group, so matching
    costs at most the segment's length times the pattern's, never a backtracking search.
    """
    if segment == "*":
        return r"[^/]+"
    chunks = ["".join(r"[^/]" if c == "?" else re.escape(c) for c in chunk) for chunk in segment.split("*")]
    if len(chunks) == 1:
        return chunks[0]
    middle = "".join(f"(?>[^/]*?{chunk})" for chunk in chunks[1:-1])
    return f"{chunks[0]}{middle}[^/]*{chunks[-1]}"


def validate_pattern(pattern: object) -> str:
    if not isinstance(pattern, str):
        raise TagError("a tag pattern must be a string")
    _compile(pattern)
    return pattern


def tag_matches(pattern: str, tag: str) -> bool:
    """True when ``tag`` matches the tag glob ``pattern``."""
    return _compile(pattern).fullmatch("/" + tag) is not None


def literal_prefix(pattern: str) -> str:
    """The text every tag that matches ``pattern`` starts with: the pattern up to its first
    wildcard, without the ``/`` before a ``**`` (``a/**`` matches ``a``, so its prefix is ``a``).
    A query may narrow its candidates with it; ``tag_matches`` still decides."""
    cut = next((i for i, c in enumerate(pattern) if c in "*?"), len(pattern))
    prefix = pattern[:cut]
    if pattern.startswith("**", cut) and prefix.endswith("/"):
        prefix = prefix[:-1]
    return prefix
