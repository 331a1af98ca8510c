"""Regular expressions over untrusted text, in linear time (RE2), for master and minion alike.

Python's ``re`` backtracks: a pattern such as ``^(a+)+$`` against a few thousand characters
takes longer than the universe. Every pattern that is matched against text from outside (event
data, log lines, HTTP bodies) is compiled here, with RE2: matching takes time linear in the
text, whatever the pattern; the features that need backtracking (backreferences, lookaround,
possessive quantifiers) are refused when the pattern is compiled, with ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2


@dataclass(frozen=True, slots=True)
class Regex:
    """A pattern compiled by RE2; ``search`` refuses text longer than ``max_text`` (no match)."""

    pattern: str
    ignore_case: bool
    max_text: int
    compiled: Any = field(compare=False, repr=False)  # re2's compiled pattern (it ships no types)

    def search(self, text: str) -> bool:
        if len(text) > self.max_text:
            return False
        # UTF-8 bytes spare the binding's offset bookkeeping; surrogatepass: a lone surrogate
        # (JSON can carry one) is matched as the bytes it is instead of raising.
        return self.compiled.search(text.encode("utf-8", "surrogatepass")) is not None


def compile_regex(pattern: str, ignore_case: bool = False, *, max_text: int = 4096) -> Regex:
    """Compile with RE2; ``ValueError`` for what RE2 refuses (the features that backtrack)."""
    options = re2.Options()
    options.log_errors = False  # the error is raised below, not printed to stderr
    options.case_sensitive = not ignore_case
    options.never_capture = True  # only whether it matches counts
    try:
        return Regex(pattern, ignore_case, max_text, re2.compile(pattern, options))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else "refused"
        reason = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise ValueError(
            f"bad regular expression: {reason} (RE2 syntax, matched in linear time: "
            "no backreferences, lookaround or possessive quantifiers)"
        ) from exc
