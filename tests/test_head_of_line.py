"""Head-of-line blocking, measured (issue 24): at 2 % loss, logical streams sharing one WebSocket
wait for each other's lost segments; the same streams as QUIC streams of one WebTransport session
do not; lost datagrams are counted, never waited for. Seeded; asserted on margins far wider than a
run's spread (at 2 % over 2 s: hundreds of held WebSocket messages against a handful at most)."""

from __future__ import annotations

import math

from transport_demo.lab.head_of_line import (
    Message,
    compare_head_of_line,
    held_by_another,
    plot_head_of_line,
)


def test_at_two_percent_loss_the_websocket_streams_jam_together_and_quic_streams_do_not() -> None:
    result = compare_head_of_line(loss=0.02, streams=4, seconds=2, seed=1)
    ws, wt = result.websocket, result.webtransport
    assert result.retransmitted > 0 and result.lost_datagrams > 0  # both networks lost packets
    assert all(s.received == s.sent == 100 for s in ws.streams + wt.streams)  # both reliable
    assert ws.held >= 20, result.table()  # streams that lost nothing waited
    assert sum(1 for s in ws.streams if s.held) >= 3, result.table()
    assert wt.held <= max(5, ws.held // 10), result.table()
    assert wt.p99_ms < ws.p99_ms, result.table()
    assert ws.p99_ms >= result.delay_ms + 150  # an RTO (200 ms) shows at the tail
    assert 0 < wt.datagrams_received <= wt.datagrams_sent == 100
    assert "held by another" in repr(result) and result.as_dict()["websocket"]["held"] == ws.held
    figure = plot_head_of_line(result)  # the notebook's picture: one panel per transport
    try:
        titles = [ax.get_title() for ax in figure.axes]
        assert titles[0].startswith(f"websocket: {ws.held} ") and titles[1].startswith("webtr")
        points = [c.get_offsets().shape[0] for c in figure.axes[0].collections]  # type: ignore[union-attr]
        assert points == [100] * 4  # every message of each stream, one colour each
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)


def test_episodes_name_the_stream_that_lost_and_the_ones_it_held() -> None:
    """Sans network: stream 0 loses a message at t=0; streams 1 and 2 wait behind it; later, an
    independent loss of stream 2 holds nobody."""

    def m(stream: int, sent: float, delay_ms: float) -> Message:
        return Message(stream, 0, sent, sent + delay_ms / 1000)

    messages = [
        m(0, 0.000, 220),
        m(1, 0.005, 215),
        m(2, 0.010, 210),
        m(3, 0.300, 20),
        m(2, 0.500, 60),
        m(0, 0.505, 20),
    ]
    assert held_by_another(messages, late_after_ms=45) == {0: (1, 0), 1: (1, 1), 2: (2, 1)}
    assert math.isclose(messages[0].delay_ms, 220)


def test_the_benchmarks_page_quotes_the_committed_run() -> None:
    """docs/benchmarks.md's head-of-line table is bench.head_of_line.markdown() of the JSON the
    run wrote (docs/bench/head_of_line.json), row for row."""
    import json
    from pathlib import Path

    from transport_demo.bench.head_of_line import LOSSES, markdown

    root = Path(__file__).resolve().parent.parent
    data = json.loads((root / "docs/bench/head_of_line.json").read_text())
    assert [run["loss"] for run in data["runs"]] == list(LOSSES)
    page = (root / "docs/benchmarks.md").read_text()
    assert markdown(data) in page
