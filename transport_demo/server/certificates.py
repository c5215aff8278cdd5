"""The TLS certificate ``--https`` serves with: made at start, or the operator's own.

A certificate made here is self-signed (a browser warns once; Playwright passes
``ignore_https_errors``), for the loopback names and the classroom's join host, with an ECDSA
P-256 key and a validity of 13 days in all. The curve and the short life are what Chromium's
``serverCertificateHashes`` asks of a certificate it pins by hash without a CA (WebTransport:
ECDSA P-256, X.509v3, total validity under 14 days; a 14-day one fails), so the same certificate
can serve HTTP/2 and HTTP/3 (WebTransport, which makes one of its own without ``--https``).
Nothing is ever committed to the repository: each start makes a new key in a private temporary
folder (mode 0700) that is removed at exit.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .settings import Settings

__all__ = ["VALIDITY", "Certificate", "certificate_for", "load_certificate", "make_certificate"]

VALIDITY = datetime.timedelta(days=13)
"""A made certificate's whole life, back-dating included (Chromium pins by hash: under 14 days)."""


@dataclass(frozen=True)
class Certificate:
    """A certificate and its key on disk (servers read files), and its SHA-256 fingerprint."""

    cert_file: Path
    key_file: Path
    sha256: bytes
    """The digest of the DER certificate: what ``serverCertificateHashes`` pins, and what a person
    compares with the browser's certificate viewer."""
    names: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """``AB:CD:…``: the SHA-256 fingerprint as browsers show it."""
        return ":".join(f"{byte:02X}" for byte in self.sha256)


def make_certificate(names: tuple[str, ...] | list[str]) -> Certificate:
    """A new self-signed certificate for ``names`` (host names or IP addresses), valid for
    :data:`VALIDITY` from a minute ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "transport-demo")])
    alternatives: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # in order, once each
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now - datetime.timedelta(minutes=1) + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="transport-demo-tls-"))  # mode 0700
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    digest = certificate.fingerprint(hashes.SHA256())
    return Certificate(cert_file, key_file, digest, tuple(dict.fromkeys(names)))


def load_certificate(cert_file: Path, key_file: Path) -> Certificate:
    """The operator's own certificate (``--cert``, ``--key``); its first certificate's names."""
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(str(value) for value in extension.value.get_values_for_type(x509.DNSName))
        addresses = extension.value.get_values_for_type(x509.IPAddress)
        names += tuple(str(value) for value in addresses)
    except x509.ExtensionNotFound:
        names = ()
    return Certificate(cert_file, key_file, certificate.fingerprint(hashes.SHA256()), names)


def certificate_for(settings: Settings) -> Certificate:
    """The certificate the server serves (``--https``, WebTransport): the operator's files, or a
    new one for the loopback names, the bound host and the classroom's join host."""
    if settings.cert_file is not None and settings.key_file is not None:
        return load_certificate(settings.cert_file, settings.key_file)
    names = ["127.0.0.1", "localhost", "::1"]
    for host in (settings.host, settings.join_host):
        if host and host not in ("0.0.0.0", "::"):
            names.append(host)
    return make_certificate(names)
