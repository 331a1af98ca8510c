"""What every command shares: the config and JSON options, output, and exit codes.

Exit codes: 0 ok, 1 the operation failed, 2 usage or config error, 3 master not reachable.
Only the CLI prints or exits.
"""

from __future__ import annotations

import functools
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from reactord.base import jsonable
from reactord.base.config import MasterConfig, load_master_config
from reactord.control import ControlClient
from reactord.protocol.errors import ConfigError, ReactordError, RequestError, Unreachable

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def config_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_path",
        metavar="FILE",
        help="master.yaml (default: $REACTORD_CONFIG, ./master.yaml, /etc/reactord/master.yaml)",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable JSON output")(func)


def load_config(config_path: str | None) -> MasterConfig:
    try:
        return load_master_config(config_path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def client(config_path: str | None, timeout: float | None = 30.0) -> ControlClient:
    return ControlClient(load_config(config_path).control_path, timeout=timeout)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn the errors an admin command can meet into one line and the right exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Unreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
        except RequestError as exc:
            fail(str(exc), EXIT_USAGE if exc.code == "bad_request" else EXIT_FAILED)
        except ReactordError as exc:
            fail(str(exc), EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A number of seconds: finite, more than 0, at most a week (``--timeout``)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 < seconds <= 7 * 86400:  # false for NaN too
            self.fail(f"{value!r} must be more than 0 and at most a week (604800)", param, ctx)
        return seconds


SECONDS = Seconds()


def to_json(value: Any, indent: int | None = None) -> str:
    """The JSON text of ``value``: what every ``--json`` output goes through (NaN and the
    infinities become ``null``: see ``jsonable.to_json``)."""
    return jsonable.to_json(value, indent=indent)


def print_json(value: Any) -> None:
    click.echo(to_json(value, indent=2))


def print_json_list(items: Iterable[Any]) -> None:
    """The text ``print_json`` gives for a list, written item by item as they come."""
    opened = False
    for item in items:
        text = to_json(item, indent=2).replace("\n", "\n  ")
        click.echo(("," if opened else "[") + "\n  " + text, nl=False)
        opened = True
    click.echo("\n]" if opened else "[]")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    print_rows(headers, rows, sample=len(rows))


def print_rows(headers: Sequence[str], rows: Iterable[Sequence[Any]], sample: int = 100) -> None:
    """A table printed as its rows come: the first ``sample`` rows set the column widths (a
    wider cell in a later row pushes the rest of its line to the right)."""
    rest = iter(rows)
    cells = [[str(h).upper() for h in headers]]
    cells += [[_cell(v) for v in row] for row in itertools.islice(rest, sample)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in itertools.chain(cells, ([_cell(v) for v in row] for row in rest)):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return jsonable.dumps(value)
    return str(value)


# Times are formatted only from 1970 to 9999 (four-digit years); anything else that can come in
# a time field (NaN, infinities, 1e300, negative, not a number at all) is printed as it is.
_LAST = 253402300800.0  # 10000-01-01T00:00:00Z


def _datable(timestamp: Any) -> bool:
    return isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool) and 0 <= timestamp < _LAST


def _raw(timestamp: Any) -> str:
    return repr(timestamp) if isinstance(timestamp, (int, float)) else str(timestamp)


def _split_millis(timestamp: float) -> tuple[int, int] | None:
    """Whole seconds and milliseconds, rounded to the millisecond; None when no date."""
    if not _datable(timestamp):
        return None
    seconds, millis = divmod(round(timestamp * 1000), 1000)
    return (seconds, millis) if seconds < _LAST else None


def ago(timestamp: float, now: float | None = None) -> str:
    if not timestamp:
        return "never"
    if not _datable(timestamp):
        return _raw(timestamp)
    seconds = max(0.0, (now or time.time()) - timestamp)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def iso(timestamp: float) -> str:
    """ISO 8601 in UTC, to the millisecond: ``2026-11-26T13:27:06.486Z``."""
    split = _split_millis(timestamp)
    if split is None:
        return _raw(timestamp)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(split[0])) + f".{split[1]:03d}Z"


def time_of_day(timestamp: float) -> str:
    """The local time of day, to the millisecond (``event watch``): ``13:27:10.407``."""
    split = _split_millis(timestamp)
    if split is None:
        return _raw(timestamp)
    try:
        return time.strftime("%H:%M:%S", time.localtime(split[0])) + f".{split[1]:03d}"
    except (OverflowError, OSError, ValueError):  # a year the platform's localtime cannot hold
        return _raw(timestamp)
