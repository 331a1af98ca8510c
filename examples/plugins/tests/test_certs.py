"""The example plugin, tested against real certificates, and found by reactord once installed."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from reactord_example_plugins.certs import CertExpiryBeacon, days_left

from minion.errors import FunctionError
from minion.functions.context import JobContext, Settings
from minion.options import Options
from minion.plugins import load_registry


def certificate(path: Path, days: int) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def ctx(root: Path) -> JobContext:
    return JobContext(
        jid="j",
        minion_id="m",
        deadline=time.monotonic() + 10,
        grains={},
        functions={},
        settings=Settings(file_roots=(root,)),
    )


def test_days_left(tmp_path: Path) -> None:
    assert 29.9 < days_left(str(certificate(tmp_path / "a.pem", 30)), ctx=ctx(tmp_path)) <= 30
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(FunctionError, match="not a PEM certificate"):
        days_left(str(tmp_path / "junk.pem"), ctx=ctx(tmp_path))
    with pytest.raises(FunctionError, match=r"outside functions\.file_roots"):
        days_left("/etc/ssl/certs/ca-certificates.crt", ctx=ctx(tmp_path))


def test_beacon_reports_expiring_certificates(tmp_path: Path) -> None:
    soon, later = certificate(tmp_path / "soon.pem", 5), certificate(tmp_path / "later.pem", 90)
    beacon = CertExpiryBeacon(
        Options("beacons.certs", {"paths": [str(soon), str(later), str(tmp_path / "x")]})
    )
    reports = {r.subject: r.data for r in beacon.poll()}
    assert reports["soon.pem"]["expiring"] is True and reports["later.pem"]["expiring"] is False
    assert reports["x"]["error"] and reports["x"]["expiring"] is True


def test_reactord_finds_the_installed_plugin_through_entry_points() -> None:
    registry = load_registry()
    assert registry.beacons["cert_expiry"] is CertExpiryBeacon
    assert registry.functions["cert.days_left"] is days_left
    assert registry.origin[("beacon", "cert_expiry")].startswith("entry point")
