"""The master's rule files: the rule set its ``rules`` globs name, loaded all or nothing, and
whether the files changed on disk since (``reactor.watch_rules``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reactord.reactor.actionspec import KindParser
from reactord.reactor.conditions import Counter
from reactord.reactor.rules import RuleError, RuleSet, load_rule_set, rule_files


class RuleFiles:
    """``patterns``: globs, relative ones from ``base`` (master.yaml's folder); targets written
    out in the rules are checked against ``nodegroups``; ``kinds``: the action kinds."""

    def __init__(
        self,
        patterns: Sequence[str],
        base: Path,
        nodegroups: Mapping[str, str],
        kinds: Mapping[str, KindParser],
    ) -> None:
        self.patterns = patterns
        self.base = base
        self.nodegroups = nodegroups
        self.kinds = kinds
        self._mtimes: dict[str, float] = {}

    def paths(self) -> list[Path]:
        return rule_files(self.patterns, self.base)

    def load(self, counter: Counter) -> RuleSet:
        """The rule set, all or nothing (``RuleError`` names the file, line and key); the
        files' times are remembered."""
        files = self.paths()
        rules = load_rule_set(files, counter, self.nodegroups, kinds=self.kinds)
        self._mtimes = _mtimes(files)
        return rules

    def changed(self) -> bool:
        """Whether a file was added, removed or written since the times were remembered."""
        return _mtimes(self.paths()) != self._mtimes

    def remember(self) -> None:
        """Take the files as they are now as seen (a reload that failed is not tried again
        until a file changes again)."""
        self._mtimes = _mtimes(self.paths())


def _mtimes(files: list[Path]) -> dict[str, float]:
    out = {}
    for path in files:
        try:
            out[str(path)] = os.stat(path).st_mtime
        except OSError:
            continue
    return out


def check_rule_files(
    files: Sequence[Path], nodegroups: Mapping[str, str] | None, kinds: Mapping[str, KindParser]
) -> tuple[RuleSet | None, dict[str, Any]]:
    """``rules check``'s verdict on ``files`` (the CLI's and the API's): the rule set when it
    loads, and the JSON answer, ``{ok, files, rules}`` or ``{ok: false, error, file, line, key}``."""
    try:
        loaded = load_rule_set(files, nodegroups=nodegroups, kinds=kinds)
    except RuleError as exc:
        return None, {"ok": False, "error": str(exc), "file": exc.path, "line": exc.line, "key": exc.key}
    return loaded, {"ok": True, "files": list(loaded.files), "rules": [r.name for r in loaded.rules]}
