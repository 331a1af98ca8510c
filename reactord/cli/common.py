"""What every command shares: the config and JSON options, output, and exit codes.

Exit codes: 0 ok, 1 the operation failed, 2 usage or config error, 3 master not reachable.
Only the CLI prints or exits.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from reactord import jsonable
from reactord.config import MasterConfig, load_master_config
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


def print_json(value: Any) -> None:
    click.echo(jsonable.dumps(value, indent=2))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h).upper() for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return jsonable.dumps(value)
    return str(value)


def ago(timestamp: float, now: float | None = None) -> str:
    if not timestamp:
        return "never"
    seconds = max(0.0, (now or time.time()) - timestamp)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def iso(timestamp: float) -> str:
    millis = round(timestamp * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"
