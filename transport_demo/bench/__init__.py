"""The benchmark: delivery latency, throughput and connection capacity of each transport, with
bare baselines on the same stack, a bare ``websockets`` floor and the peers a Python developer
would pick instead (python-socketio, sse-starlette), all measured in the same run.

Run it with ``python -m transport_demo.bench`` (``--quick`` for seconds); method and figures are
in ``docs/benchmarks.md``. From Python::

    from transport_demo import bench
    results = bench.run(bench.Sizes.notebook(), scenarios=("latency", "throughput"))
    print(bench.report.markdown(results.as_dict()))

Through a slower network (a shaped relay between the clients and each server; capacity stays on
loopback)::

    from transport_demo.lab.network import Conditions
    results = bench.run(bench.Sizes.network(), scenarios=("latency", "reconnect"),
                        targets=bench.OURS, network=Conditions(delay_ms=50))
    print(bench.report.network_table([results.as_dict()]))

Needs the ``bench`` extra (``pip install -e ".[bench]"``) for the peers.
"""

from __future__ import annotations

from . import report
from .run import OURS, SCENARIOS, TARGETS, Results, Sizes, run

__all__ = ["OURS", "SCENARIOS", "TARGETS", "Results", "Sizes", "report", "run"]
