"""Event data as operators type it on a command line: ``--data JSON`` and ``-d key=value``."""

from __future__ import annotations

import json
from typing import Any


def parse_data(data_json: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--data JSON`` and ``-d key=value`` into one data map (values of -d are JSON if they parse).

    Raises ``ValueError`` naming the option that is wrong.
    """
    data: dict[str, Any] = {}
    if data_json:
        try:
            loaded = json.loads(data_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--data is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValueError("--data must be a JSON object")
        data.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-d expects KEY=VALUE, got {pair!r}")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value
    return data
