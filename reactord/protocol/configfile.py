"""Reading a YAML config file once, at the edge, into a frozen typed object.

Each config class is a frozen dataclass whose fields carry a converter in their metadata
(``option(default, convert)``). ``build`` checks every key: unknown keys (with the nearest
known one), wrong types and bad values raise one ``ConfigError`` naming the file, the line and
the dotted key. The YAML is read like rule files are (``protocol/yamlfile.py``): a key given
twice is refused, and a YAML error is one line with its file and line. A missing file is
told with every place looked at. Relative paths resolve against the folder of the file that
names them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reactord.protocol.durations import parse_duration
from reactord.protocol.errors import ConfigError, ReactordError
from reactord.protocol.yamlfile import LineDict, describe_error, load_with_lines

T = TypeVar("T")
Convert = Callable[[Any, "Where"], Any]

SYSTEM_DIR = Path("/etc/reactord")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a value comes from: the file, its folder, the dotted key, and the kind of file it
    is read as (``master.yaml``, ``minion.yaml``; for errors)."""

    path: str
    base: Path
    key: str
    kind: str = ""


def option(default: Any, convert: Convert, doc: str = "") -> Any:
    """A config field: its default (converted like any value) and its converter."""
    meta = {"convert": convert, "doc": doc, "default": default}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def find_config(explicit: str | None, filename: str) -> Path:
    """The config file to use: ``-c``, then ``$REACTORD_CONFIG``, then ``./<filename>``,
    then ``/etc/reactord/<filename>``."""
    return _search(explicit, filename)[0]


def _search(explicit: str | None, filename: str) -> tuple[Path, str]:
    """The config file to use, and the places looked at to find it (said when it is missing)."""
    system = SYSTEM_DIR / filename
    if explicit:
        path = Path(explicit).absolute()
        return path, f"tried -c {path}; with -c, $REACTORD_CONFIG, ./{filename} and {system} are not read"
    env = os.environ.get("REACTORD_CONFIG")
    if env:
        path = Path(env).absolute()
        return path, (
            f"tried -c (not given), $REACTORD_CONFIG={path}; with $REACTORD_CONFIG set,"
            f" ./{filename} and {system} are not read"
        )
    local = Path.cwd() / filename
    if local.exists():
        return local, f"tried ./{filename}"
    return system, (f"tried -c (not given), $REACTORD_CONFIG (not set), ./{filename} (no {local}), {system}")


def read_yaml_mapping(path: Path, tried: str = "") -> dict[str, Any]:
    """The top-level mapping of a YAML config file (``LineDict``s inside, for the lines of
    errors); ``ConfigError`` for a missing or unreadable file, bad YAML or a key given twice."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path), None, "config file not found" + (f" ({tried})" if tried else "")
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror}") from exc
    try:
        data = load_with_lines(text, yaml11_booleans=True)
    except yaml.YAMLError as exc:
        line, problem = describe_error(exc)
        raise ConfigError(_at(str(path), line), None, f"invalid YAML: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, "the top level must be a mapping of keys")
    return data


def load(cls: type[T], explicit: str | None, filename: str) -> T:
    """Find the config file (see ``find_config``), read it and build ``cls`` from it.

    ``cls`` may have a ``path`` field without a converter: it receives the file's path.
    """
    found, tried = _search(explicit, filename)
    path = found.absolute()
    raw = read_yaml_mapping(path, tried)
    fixed = {"path": path} if "path" in {f.name for f in dataclasses.fields(cls)} else {}  # type: ignore[arg-type]
    return build(cls, raw, Where(str(path), path.parent, "", filename), **fixed)


def _at(path: str, line: int) -> str:
    """``file:line`` when the line is known."""
    return f"{path}:{line}" if line else path


def _line(raw: Any, key: Any) -> int:
    return raw.line_of(key) if isinstance(raw, LineDict) else 0


def _unknown(where: Where, key: str, known: list[str]) -> str:
    """Why ``key`` is refused: which file it is not a key of, and the nearest known key."""
    name = Path(where.path).name
    kind = where.kind or name
    message = f"unknown key in {name}" + (f", read as {kind}" if kind != name else "")
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        message += f"; did you mean {_dotted(where.key, close[0])}?"
    return message + f" (known: {', '.join(known)})"


def build(cls: type[T], raw: dict[str, Any], where: Where, **fixed: Any) -> T:
    """Build ``cls`` from ``raw``; fields without a converter come from ``fixed``."""
    if not isinstance(raw, dict):
        raise ConfigError(where.path, where.key or None, "expected a mapping")
    known = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if "convert" in f.metadata
    }
    for key in raw:
        if key not in known:
            dotted = _dotted(where.key, str(key))
            raise ConfigError(
                _at(where.path, _line(raw, key)), dotted, _unknown(where, str(key), sorted(known))
            )
    values: dict[str, Any] = dict(fixed)
    for name, spec in known.items():
        here = Where(where.path, where.base, _dotted(where.key, name), where.kind)
        value = raw[name] if name in raw else _copy(spec.metadata["default"])
        try:
            values[name] = spec.metadata["convert"](value, here)
        except ConfigError:
            raise
        except (ValueError, TypeError, ReactordError) as exc:
            line = _line(raw, name) if name in raw else 0
            raise ConfigError(_at(where.path, line), here.key, str(exc)) from exc
    return cls(**values)


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# -- converters -----------------------------------------------------------------------------


def as_str(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def as_bool(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def as_int(low: int, high: int) -> Convert:
    def convert(value: Any, where: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def as_duration(low: float = 0.0) -> Convert:
    def convert(value: Any, where: Where) -> float:
        seconds = parse_duration(value)
        if seconds < low:
            raise ValueError(f"must be at least {low}s")
        return seconds

    return convert


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}


def parse_size(value: Any) -> int:
    """A number of bytes: an integer, or text such as ``64MiB``, ``512k``, ``10GB``
    (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB powers of 1000)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as 64MiB or 1048576, got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def as_size(low: int, high: int) -> Convert:
    def convert(value: Any, where: Where) -> int:
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"must be between {low} and {high} bytes, got {size}")
        return size

    return convert


def as_number(low: float, high: float) -> Convert:
    def convert(value: Any, where: Where) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value}")
        return float(value)

    return convert


def as_choice(*choices: str) -> Convert:
    def convert(value: Any, where: Where) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def parse_address(text: str, default_host: str | None = "127.0.0.1") -> tuple[str, int]:
    """``host:port`` (``[::1]:9510`` for IPv6) into its parts; ``ValueError`` if malformed.

    The port is ASCII digits only (``str.isdigit`` also takes ``"²"``). A listener's empty host
    is ``default_host``; with ``default_host=None`` (an address to connect to) it is an error.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    host = host.strip("[]")
    if not host:
        if default_host is None:
            raise ValueError(f"expected host:port, got {text!r} (no host)")
        host = default_host
    return host, int(port)


def as_address(value: Any, where: Where) -> str:
    """``host:port`` of an HTTP listener, or empty (or absent) for off."""
    text = as_str(value, where) if value is not None else ""
    if text:
        parse_address(text)
    return text


def as_path(value: Any, where: Where) -> Path:
    """A path; relative paths resolve against the config file's folder."""
    text = as_str(value, where)
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else (where.base / path)


def as_optional_path(value: Any, where: Where) -> Path | None:
    return None if value in (None, "") else as_path(value, where)


def as_str_list(value: Any, where: Where) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return list(value)


def as_mapping(value: Any, where: Where) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("expected a mapping with string keys")
    return _copy(value)  # type: ignore[no-any-return]  # plain dicts all the way down


def section(cls: type[T]) -> Convert:
    """A nested mapping built into its own frozen config class."""

    def convert(value: Any, where: Where) -> T:
        if value is None:
            value = {}
        if isinstance(value, cls):
            return value
        return build(cls, value, where)

    return convert
