"""One results folder for a run, however many Locust processes produced the measurements.

Every process that runs users (each worker, or the single process of a local run) sends
``Measurements.take_snapshot()`` once per wall-clock second, labelled with the whole second
that ends the interval, and a last partial one when its users stop. The process that owns
the results (the master, or that single process) adds them up here:

* ``timeseries.csv`` — one row per second, operation and kind (service/intended), from the
  sum of all processes' histograms of that second, so percentiles are exact across workers.
  A second is written ``lag_s`` after it ended, giving every process time to report it; a
  snapshot that arrives later still counts in the totals and is written as an extra row
  with the same timestamp.
* ``summary.csv`` and ``<op>.hdr``/``Intended-<op>.hdr`` at the end, from the totals.

The labels are wall-clock seconds, so workers on other machines need synchronised clocks.
"""

import math
from collections.abc import Mapping
from pathlib import Path

from workloads.measure import Measurements, ResultsWriter, append_timeseries


def next_second(now: float) -> int:
    """The label of the interval running at ``now``: the whole second that will end it."""
    return math.floor(now) + 1


class MergedResults:
    def __init__(self, results_dir: str | Path, lag_s: float = 3.0):
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.lag_s = lag_s
        self.totals = Measurements()
        self._seconds: dict[int, Measurements] = {}

    def add(self, second: int, snapshot: Mapping[str, Mapping]) -> None:
        self.totals.absorb(snapshot)
        bucket = self._seconds.get(second)
        if bucket is None:
            bucket = self._seconds[second] = Measurements()
        bucket.absorb(snapshot)

    def flush(self, now: float) -> None:
        """Write the seconds that ended at least ``lag_s`` before ``now``, oldest first."""
        for second in sorted(s for s in self._seconds if s <= now - self.lag_s):
            append_timeseries(self.results_dir, self._seconds.pop(second).take_interval(second))

    def finish(self) -> None:
        """Write every second still held, then the summary and the histograms."""
        self.flush(math.inf)
        ResultsWriter(self.totals, self.results_dir).write_summary()
