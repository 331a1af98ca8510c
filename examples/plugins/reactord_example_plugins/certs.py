"""A beacon that watches TLS certificates expire, and a function that reads one's expiry.

Both follow the plugin contracts: the beacon is a class taking an ``Options`` reader and
implementing ``poll() -> list[Report]``; the function is a plain typed callable. Neither
keeps state in module globals.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import ClassVar

from cryptography import x509

from minion.beacons.base import Report, subject
from minion.errors import FunctionError
from minion.functions.confine import confined
from minion.functions.context import JobContext
from minion.options import Options


def _not_after(path: str) -> datetime.datetime:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise FunctionError(f"{path}: {exc.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise FunctionError(f"{path}: not a PEM certificate: {exc}") from None
    return cert.not_valid_after_utc


def _days(when: datetime.datetime, now: datetime.datetime | None = None) -> float:
    now = now or datetime.datetime.now(datetime.UTC)
    return round((when - now).total_seconds() / 86400, 2)


class CertExpiryBeacon:
    """Days until each certificate expires.

    Options: ``paths`` (PEM certificate files), ``warn_days`` (fewer days left sets
    ``expiring``; default 21).
    Data: ``path not_after days_left expiring error``; subject: the file name. Onchange
    reports when ``expiring`` changes (or a file becomes unreadable).
    """

    default_interval: ClassVar[float] = 3600.0

    def __init__(self, options: Options) -> None:
        self.paths = options.text_list("paths", required=True)
        self.warn_days = options.number("warn_days", 21.0) or 0.0

    def poll(self) -> list[Report]:
        reports = []
        for path in self.paths:
            try:
                when = _not_after(path)
            except FunctionError as exc:
                data = {
                    "path": path,
                    "not_after": None,
                    "days_left": None,
                    "expiring": True,
                    "error": str(exc),
                }
            else:
                left = _days(when)
                data = {
                    "path": path,
                    "not_after": when.isoformat(),
                    "days_left": left,
                    "expiring": left < self.warn_days,
                    "error": None,
                }
            reports.append(Report(subject(Path(path).name), data, state=(data["expiring"], data["error"])))
        return reports


def days_left(path: str, *, ctx: JobContext) -> float:
    """Days until the PEM certificate at ``path`` expires (negative once it has).

    Like the built-in file functions, it reads only inside ``functions.file_roots``.
    """
    return _days(_not_after(str(confined(path, ctx.settings.file_roots))))
