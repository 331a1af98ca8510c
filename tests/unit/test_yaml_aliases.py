"""An anchor used over and over: a small document that stands for millions of values is
refused when it is read, before anything walks it (rule conditions, gate checks)."""

from __future__ import annotations

import pytest
import yaml

from reactord.protocol.yamlfile import MAX_EXPANDED, load_with_lines
from reactord.reactor.conditions import Counter
from reactord.reactor.rules import RuleError, load_rules_text


def _doubling(levels: int) -> str:
    """``levels`` anchors, each naming the one before twice: 2**levels conditions."""
    text = "rules:\n  - name: r0\n    on: a/b\n    when: &w0 {data.x: {eq: 1}}\n    do: [{log: hi}]\n"
    for i in range(1, levels):
        text += f"  - name: r{i}\n    on: a/b\n    when: &w{i} {{all: [*w{i - 1}, *w{i - 1}]}}\n"
        text += "    do: [{log: hi}]\n"
    return text


def test_a_document_that_expands_past_the_bound_is_refused_at_once() -> None:
    text = _doubling(40)  # 2 KB of text, 2**40 conditions once followed: walking it never ends
    with pytest.raises(yaml.YAMLError, match="aliases"):
        load_with_lines(text)
    with pytest.raises(RuleError, match="more than 1,000,000 values"):
        load_rules_text(text, "bomb.yaml", Counter(), kinds={})


def test_anchors_used_a_few_times_still_load() -> None:
    loaded = load_with_lines(_doubling(6))
    assert len(loaded["rules"]) == 6 and MAX_EXPANDED >= 1_000_000
    assert loaded["rules"][5]["when"]["all"][0] is loaded["rules"][4]["when"]
