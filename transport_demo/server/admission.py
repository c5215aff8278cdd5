"""Bounds a room of strangers could abuse: connections per client address, texts per second per
connection. Sans-I/O bookkeeping with no clock of its own (every time is passed in) and no
sockets: the hub calls it under its lock, the tests call it directly (tests/test_admission.py).

* :class:`AddressBook` counts the *connections* (the hub's, with an id: not TCP sockets) each
  client address holds, from creation until the connection expires. A connection that is cut and
  resumed keeps its place; one that expires frees it. Since a connection has at most one stream
  attached (a resume supersedes the old one) or one held poll, this also bounds the streams and
  held polls an address keeps open (not bare TCP connections that never send a request).
* :class:`RateLimit` is a token bucket per connection (the shape of nginx's ``limit_req`` with a
  ``burst``): ``rate`` texts a second on average, up to ``burst`` at once; one more is refused
  with :class:`~transport_demo.server.errors.RateLimited` and nothing is queued.

The address is the TCP peer's (``request.client.host``), never ``X-Forwarded-For``, which any
client can write. Behind a proxy every client shares the proxy's address, so there this limit
counts the whole room together: raise it or turn it off (``None``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .errors import RateLimited, TooManyConnectionsFromAddress

__all__ = ["AddressBook", "Admission", "RateLimit"]


class AddressBook:
    """How many connections each client address holds, bounded by ``limit`` (``None``: no limit).

    ``admit`` before creating a connection, ``add`` once it exists, ``remove`` when it is gone.
    A connection with no known address (``None``: a test calling the hub directly, or a server
    that does not say) is not counted.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._address_of: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def admit(self, address: str | None) -> None:
        """Raise :class:`TooManyConnectionsFromAddress` if ``address`` is at its limit."""
        if address is None or self.limit is None:
            return
        if self._counts[address] >= self.limit:
            raise TooManyConnectionsFromAddress.of(address, self.limit)

    def add(self, connection_id: str, address: str | None) -> None:
        """``connection_id`` now exists and belongs to ``address``."""
        if address is None:
            return
        self._address_of[connection_id] = address
        self._counts[address] += 1

    def remove(self, connection_id: str) -> None:
        """``connection_id`` is gone (expired); its address may open another."""
        address = self._address_of.pop(connection_id, None)
        if address is None:
            return
        self._counts[address] -= 1
        if self._counts[address] <= 0:
            del self._counts[address]

    def count(self, address: str) -> int:
        """Connections ``address`` holds now."""
        return self._counts[address]

    def addresses(self) -> int:
        """How many distinct addresses hold a connection."""
        return len(self._counts)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    """A token bucket per key: ``rate`` per second on average, ``burst`` at once (``rate`` None:
    no limit). Each key starts full."""

    def __init__(self, rate: float | None, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, _Bucket] = {}
        self._pruned = 0.0

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill up again (``burst / rate``)."""
        return self.burst / self.rate if self.rate else 0.0

    def prune(self, now: float) -> int:
        """Forget every bucket that has refilled by ``now``; return how many.

        A full bucket answers exactly as a missing one does (each key starts full), so pruning
        changes no decision, unlike forgetting every bucket at fixed times (which hands each key a
        fresh burst). Runs at most once per :attr:`refill_seconds` (so it is cheap to call before
        every take); the buckets kept are the keys seen within about two refill times.
        """
        if self.rate is None or now - self._pruned < self.refill_seconds:
            return 0
        self._pruned = now
        horizon = now - self.refill_seconds
        stale = [key for key, bucket in self._buckets.items() if bucket.updated <= horizon]
        for key in stale:
            del self._buckets[key]
        return len(stale)

    def take(self, key: str, now: float) -> None:
        """Spend one token of ``key``'s bucket at time ``now``, or raise :class:`RateLimited`
        (the bucket is left as it was: a refused text costs nothing)."""
        if self.rate is None:
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / self.rate
            raise RateLimited(
                f"Too fast: this connection may send {self.rate:g} texts a second (bursts of "
                f"{self.burst}). This one was refused, not queued; send it again in "
                f"{wait:.2f} s."
            )
        bucket.tokens -= 1.0

    def forget(self, key: str) -> None:
        """``key`` is gone: drop its bucket."""
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


class Admission:
    """Both bounds together, as the hub holds them (call with the hub's lock held)."""

    def __init__(self, per_address: int | None, rate: float | None, burst: int) -> None:
        self.addresses = AddressBook(per_address)
        self.rates = RateLimit(rate, burst)

    def forget(self, connection_id: str) -> None:
        """The connection expired: free its address's place and its bucket."""
        self.addresses.remove(connection_id)
        self.rates.forget(connection_id)
