"""Locust's ``--csv`` writer, made to end quietly when Locust closes its files.

Locust 2.47 closes the CSV files at shutdown (``close_files``) without stopping the
greenlet that rewrites them every ``CSV_STATS_INTERVAL_SEC``. If that greenlet's sleep ends
while the process exits (the exit handlers yield to gevent's hub), it writes to a closed
file and Locust prints a ValueError traceback after the run's summary. Nothing is lost —
the files hold the last interval written before the close, as they would without the
race — but a run's stderr must carry tracebacks only for real failures, so the writer loop
ends without one when it finds its files closed.
"""

import functools

from locust.stats import StatsCSVFileWriter


def end_quietly_when_closed() -> None:
    """Patch ``StatsCSVFileWriter.stats_writer`` (once); main spawns it after the locustfile loads."""
    loop = StatsCSVFileWriter.stats_writer
    if getattr(loop, "ends_quietly_when_closed", False):
        return

    @functools.wraps(loop)
    def stats_writer(self: StatsCSVFileWriter) -> None:
        try:
            loop(self)
        except ValueError:
            if not self.requests_csv_filehandle.closed:
                raise

    stats_writer.ends_quietly_when_closed = True
    StatsCSVFileWriter.stats_writer = stats_writer
