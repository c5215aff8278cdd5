"""The classroom bounds as pure bookkeeping: no sockets, no clock but the one passed in."""

from __future__ import annotations

import pytest

from transport_demo.server.admission import AddressBook, Admission, RateLimit
from transport_demo.server.errors import RateLimited, TooManyConnectionsFromAddress
from transport_demo.server.protocol import ErrorCode


def test_address_book_counts_per_address_and_frees_on_remove() -> None:
    book = AddressBook(limit=2)
    for cid in ("a1", "a2"):
        book.admit("10.0.0.7")
        book.add(cid, "10.0.0.7")
    with pytest.raises(TooManyConnectionsFromAddress) as refused:
        book.admit("10.0.0.7")
    assert refused.value.code == ErrorCode.TOO_MANY_CONNECTIONS_FROM_ADDRESS
    assert "10.0.0.7" in refused.value.detail and "2 connections" in refused.value.detail
    book.admit("10.0.0.8")  # another address is not affected
    book.remove("a1")
    assert book.count("10.0.0.7") == 1
    book.admit("10.0.0.7")  # a place is free again
    book.remove("a2")
    book.remove("a2")  # removing twice (or an unknown id) changes nothing
    assert book.count("10.0.0.7") == 0 and book.addresses() == 0


def test_address_book_without_limit_or_address_counts_but_never_refuses() -> None:
    book = AddressBook(limit=None)
    for i in range(100):
        book.admit("10.0.0.7")
        book.add(f"c{i}", "10.0.0.7")
    assert book.count("10.0.0.7") == 100
    limited = AddressBook(limit=1)
    for i in range(5):  # no address known: not counted, never refused
        limited.admit(None)
        limited.add(f"x{i}", None)
    assert limited.addresses() == 0


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    limit = RateLimit(rate=2.0, burst=3)
    now = 100.0
    for _ in range(3):
        limit.take("c", now)
    with pytest.raises(RateLimited) as refused:
        limit.take("c", now)
    assert refused.value.code == ErrorCode.RATE_LIMITED
    assert "2 texts a second" in refused.value.detail and "0.50 s" in refused.value.detail
    limit.take("other", now)  # buckets are per connection
    limit.take("c", now + 0.5)  # half a second refills one token at 2/s
    with pytest.raises(RateLimited):
        limit.take("c", now + 0.5)
    for i in range(1, 21):  # a steady 2 a second is never refused
        limit.take("c", now + 0.5 + i * 0.5)


def test_refused_texts_cost_nothing_and_the_bucket_never_overfills() -> None:
    limit = RateLimit(rate=1.0, burst=2)
    limit.take("c", 0.0)
    limit.take("c", 0.0)
    for _ in range(50):  # hammering while empty does not push the next token further away
        with pytest.raises(RateLimited):
            limit.take("c", 0.5)
    limit.take("c", 1.0)
    limit.take("c", 1000.0)  # an hour idle refills only up to the burst
    limit.take("c", 1000.0)
    with pytest.raises(RateLimited):
        limit.take("c", 1000.0)


def test_rate_limit_off_and_forget() -> None:
    off = RateLimit(rate=None, burst=1)
    for _ in range(1000):
        off.take("c", 0.0)
    assert len(off) == 0  # nothing kept when off
    on = Admission(per_address=1, rate=1.0, burst=1)
    on.addresses.add("c", "10.0.0.9")
    on.rates.take("c", 0.0)
    on.forget("c")
    assert len(on.rates) == 0 and on.addresses.count("10.0.0.9") == 0
