"""TLS 1.3 records read back with the session's secrets: what Wireshark does with a key log.

A capture of ``start_server(https=True)`` holds TLS records, not HTTP/2. With the secrets of the
session in the NSS key log format (``SSLKEYLOGFILE``; Python's ``ssl.SSLContext.keylog_filename``
writes it on either side), the records decrypt (RFC 8446): each secret gives a key and an IV
(§7.1, ``HKDF-Expand-Label``; §7.3), each record's nonce is the IV XOR its sequence number in
that direction (§5.3), and the 5-byte record header is the additional data (§5.2). Sans-I/O:
:class:`TlsReader` takes one direction's bytes and returns :class:`TlsRecord` s.

Deliberately small: TLS 1.3 only (what this suite's server and Python's clients negotiate), the
three cipher suites of RFC 8446 §B.4 that are not CCM, no HelloRetryRequest, no KeyUpdate (after
one, decryption fails and the rest of that direction is left undecoded). Which key a record needs
is found the way the handshake moves: the handshake traffic secret until a record does not
authenticate under it, then the first application traffic secret (AEAD tags make a wrong key fail
for certain, never decrypt to garbage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

__all__ = ["CONTENT_TYPES", "HANDSHAKE_TYPES", "Secrets", "TlsReader", "TlsRecord", "read_keylog"]

Secrets = Mapping[bytes, Mapping[str, bytes]]
"""A key log: client random -> label (``CLIENT_TRAFFIC_SECRET_0``, …) -> secret."""

CONTENT_TYPES = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData"}
HANDSHAKE_TYPES = {
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    8: "EncryptedExtensions",
    11: "Certificate",
    13: "CertificateRequest",
    15: "CertificateVerify",
    20: "Finished",
    24: "KeyUpdate",
}
_SUITES: dict[int, tuple[type[AESGCM] | type[ChaCha20Poly1305], int, hashes.HashAlgorithm]] = {
    # RFC 8446 §B.4: AEAD, key length, hash
    0x1301: (AESGCM, 16, hashes.SHA256()),
    0x1302: (AESGCM, 32, hashes.SHA384()),
    0x1303: (ChaCha20Poly1305, 32, hashes.SHA256()),
}
_HELLO_RETRY = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def read_keylog(path: str | Path) -> dict[bytes, dict[str, bytes]]:
    """An NSS key log file as :data:`Secrets` (comments and unknown lines skipped; a file not
    written yet is an empty log)."""
    secrets: dict[bytes, dict[str, bytes]] = {}
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return secrets
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            random, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            continue
        secrets.setdefault(random, {})[parts[0]] = secret
    return secrets


def _expand_label(secret: bytes, label: bytes, length: int, hash_: hashes.HashAlgorithm) -> bytes:
    """HKDF-Expand-Label with an empty context (RFC 8446 §7.1)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hash_, length, info).derive(secret)


class _Key:
    """One traffic secret's AEAD, IV and record sequence number (RFC 8446 §5.3)."""

    def __init__(self, suite: int, secret: bytes) -> None:
        aead, key_length, hash_ = _SUITES[suite]
        self.aead: AESGCM | ChaCha20Poly1305 = aead(
            _expand_label(secret, b"key", key_length, hash_)
        )
        self.iv = _expand_label(secret, b"iv", 12, hash_)
        self.seq = 0

    def open(self, header: bytes, ciphertext: bytes) -> bytes:
        nonce = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big"), strict=True))
        plain: bytes = self.aead.decrypt(nonce, ciphertext, header)  # InvalidTag: wrong key
        self.seq += 1
        return plain


@dataclass(frozen=True)
class TlsRecord:
    """One TLS record: its ``content_type`` (the inner one once decrypted), ``wire`` (the record
    as sent), ``end`` (its end offset in the direction's bytes), ``plaintext`` (the record's
    content; for an encrypted record, decrypted and without padding and inner type), whether it
    was ``encrypted`` and whether it could be read (``decrypted``)."""

    content_type: int
    wire: bytes
    end: int
    plaintext: bytes
    encrypted: bool
    decrypted: bool

    @property
    def summary(self) -> str:
        """``TLS Handshake: ServerHello``, ``TLS ApplicationData (decrypted), 120 bytes``, …"""
        name = CONTENT_TYPES.get(self.content_type, f"type {self.content_type}")
        if self.encrypted and not self.decrypted:
            return f"TLS encrypted record, {len(self.wire) - 5} bytes (no key)"
        if self.content_type == 22:
            return f"TLS {name}: {', '.join(handshake_messages(self.plaintext))}"
        if self.content_type == 21 and len(self.plaintext) >= 2:
            return f"TLS Alert {self.plaintext[1]}" + (" (close_notify)" * (self.plaintext[1] == 0))
        note = " (decrypted)" if self.encrypted else ""
        return f"TLS {name}{note}, {len(self.plaintext)} bytes"


def handshake_messages(data: bytes) -> list[str]:
    """The names of the handshake messages in ``data`` (RFC 8446 §4: type, 24-bit length)."""
    names, at = [], 0
    while at + 4 <= len(data):
        names.append(HANDSHAKE_TYPES.get(data[at], f"type {data[at]}"))
        at += 4 + int.from_bytes(data[at + 1 : at + 4], "big")
    return names


class TlsReader:
    """Both directions of one TLS 1.3 connection. Feed each direction's bytes as they come
    (:meth:`feed`); each call returns the records completed by them. ``secrets`` is the key log
    (looked up by the ClientHello's random when the ServerHello names the cipher suite)."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.client_random = b""
        self.suite = 0
        self.keys: dict[bool, list[_Key]] = {True: [], False: []}  # up: the client's
        self.buffers = {True: bytearray(), False: bytearray()}
        self.offsets = {True: 0, False: 0}
        self.failed = {True: False, False: False}

    def feed(self, up: bool, data: bytes) -> list[TlsRecord]:
        """The records ``data`` completes in direction ``up`` (client to server if True)."""
        buffer = self.buffers[up]
        buffer += data
        records = []
        while len(buffer) >= 5:
            length = int.from_bytes(buffer[3:5], "big")
            if len(buffer) < 5 + length:
                break
            wire = bytes(buffer[: 5 + length])
            del buffer[: 5 + length]
            self.offsets[up] += len(wire)
            records.append(self._record(up, wire))
        return records

    def _record(self, up: bool, wire: bytes) -> TlsRecord:
        content_type, body, end = wire[0], wire[5:], self.offsets[up]
        if content_type != 23:  # in the clear: hellos, ChangeCipherSpec, early alerts
            if content_type == 22 and body[:1] == b"\x01" and len(body) >= 38:
                self.client_random = body[6:38]
            elif content_type == 22 and body[:1] == b"\x02" and len(body) >= 39:
                self._server_hello(body)
            return TlsRecord(content_type, wire, end, body, False, True)
        plain = self._open(up, wire[:5], body)
        if plain is None:
            return TlsRecord(23, wire, end, b"", True, False)
        inner = plain.rstrip(b"\x00")  # RFC 8446 §5.4: content, then type, then zero padding
        return TlsRecord(inner[-1] if inner else 0, wire, end, inner[:-1], True, True)

    def _server_hello(self, body: bytes) -> None:
        random, session_id = body[6:38], body[38]
        at = 39 + session_id
        suite = int.from_bytes(body[at : at + 2], "big")
        if random == _HELLO_RETRY or suite not in _SUITES:
            return  # not followed: every later record stays encrypted
        self.suite = suite
        logged = self.secrets.get(self.client_random, {})
        for up, side in ((True, "CLIENT"), (False, "SERVER")):
            labels = (f"{side}_HANDSHAKE_TRAFFIC_SECRET", f"{side}_TRAFFIC_SECRET_0")
            self.keys[up] = [_Key(suite, logged[label]) for label in labels if label in logged]

    def _open(self, up: bool, header: bytes, ciphertext: bytes) -> bytes | None:
        keys = self.keys[up]
        while keys and not self.failed[up]:
            try:
                return keys[0].open(header, ciphertext)
            except InvalidTag:
                keys.pop(0)  # the handshake is over in this direction: the next secret
        self.failed[up] = True
        return None
