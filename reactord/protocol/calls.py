"""Function calls as the command line writes and shows them: ``reactord run`` and
``reactord call`` alike (the minion's CLI cannot import the master's).

Arguments are words: ``name=value`` is a keyword, anything else a positional argument;
values are read as YAML scalars (``3``, ``true``, ``[a, b]``) except what YAML would make a
date, which stays text. A return is shown as YAML (``true``, lists as blocks), an error as
one ``ERROR:`` line.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import yaml

_KWARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)


def parse_call_args(raw: tuple[str, ...] | list[str]) -> tuple[list[Any], dict[str, Any]]:
    """CLI words into args and kwargs: ``name=value`` is a keyword; values are YAML scalars."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for word in raw:
        match = _KWARG.fullmatch(word)
        if match:
            kwargs[match.group(1)] = _value(match.group(2))
        else:
            args.append(_value(word))
    return args, kwargs


def _value(text: str) -> Any:
    """A YAML scalar (3, true, [a, b]); text that YAML would turn into a date stays text."""
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text
    return text if isinstance(value, (datetime.date, datetime.datetime)) else value


def return_lines(ret: dict[str, Any] | None) -> list[str]:
    """One minion's return as lines of text: the value as YAML, or the error."""
    if ret is None:
        return ["(no return yet)"]
    lines = []
    if not ret.get("success"):
        lines.append("ERROR: " + (ret.get("error") or f"failed (retcode {ret.get('retcode')})"))
    if ret.get("return") is not None or ret.get("success"):
        text = yaml.safe_dump(ret.get("return"), default_flow_style=False, sort_keys=True, allow_unicode=True)
        lines.extend(text.rstrip("\n").removesuffix("\n...").splitlines())
    return lines
