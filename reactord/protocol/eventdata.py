"""Event data as operators type it on a command line: ``--data JSON`` and ``-d key=value``."""

from __future__ import annotations

import json
from typing import Any

import click


def parse_data(data_json: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--data JSON`` and ``-d key=value`` into one data map (values of -d are JSON if they parse)."""
    data: dict[str, Any] = {}
    if data_json:
        try:
            loaded = json.loads(data_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from exc
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--data")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="-d")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data
