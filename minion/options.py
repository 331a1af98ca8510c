"""Reading a plugin's options (a beacon's or a function module's): typed, with unknown keys refused."""

from __future__ import annotations

from typing import Any

from reactord.protocol.durations import parse_duration


class Options:
    """``Options(where, raw)``; read each key with a typed getter, then call ``done()``."""

    def __init__(self, where: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping of options")
        self.where = where
        self.raw = raw
        self.read: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        return self.raw.get(key, default)

    def fail(self, key: str, message: str) -> ValueError:
        return ValueError(f"{self.where}.{key}: {message}")

    def duration(self, key: str, default: float, minimum: float = 0.0) -> float:
        try:
            value = parse_duration(self._get(key, default))
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}s")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "expected true or false")
        return value

    def integer(self, key: str, default: int, low: int = 0, high: int = 2**31) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer from {low} to {high}")
        return value

    def number(self, key: str, default: float | None) -> float | None:
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, "expected a number")
        return float(value)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, default)
        if value is None and required:
            raise self.fail(key, "is required")
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "expected text")
        return value

    def text_list(self, key: str, default: list[str] | None = None, *, required: bool = False) -> list[str]:
        value = self._get(key, default if default is not None else [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "expected a list of text")
        if required and not value:
            raise self.fail(key, "needs at least one entry")
        return list(value)

    def numbers(self, key: str) -> dict[str, float]:
        """A mapping of numbers (thresholds): ``{"/": 90}``; ``ValueError`` names the key."""
        out = {}
        for name, value in self.mapping(key).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(f"{key}.{name}", f"expected a number, got {value!r}")
            out[str(name)] = float(value)
        return out

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping")
        return dict(value)

    def raw_value(self, key: str, default: Any = None) -> Any:
        return self._get(key, default)

    def done(self) -> None:
        extra = sorted(set(self.raw) - self.read)
        if extra:
            raise ValueError(
                f"{self.where}: unknown option {extra[0]!r} (known: {', '.join(sorted(self.read))})"
            )
