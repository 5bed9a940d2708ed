"""The control that owns one run: declare it once at the top of an experiment.

    controls:
      - name: refcluster
        provider:
          type: python
          module: chaos.experiment.controls
          arguments: {name: rack_breaker}     # the results folder: results/<utc>-rack_breaker

Before the experiment it checks the configuration (typed in place, chaos.experiment.config),
creates the results folder, starts the embedded cluster (unless ``hosts`` is given), preloads
and starts the YCSB load, the safety workload and the recorder. After the method it lets the
safety probes read everything back. After the experiment (Chaos Toolkit calls it also when
the run failed, or was interrupted by Ctrl-C or SIGTERM) it writes the journal, safety.json,
timeline.csv and report.html, prints the summary, and tears everything down; the cleanup
hook and an atexit handler tear down too, in case the run was cut short before that.
"""

from chaoslib.exceptions import InterruptExecution
from chaoslib.types import Configuration, Experiment, Journal

from . import session
from .config import settings_from

__all__ = ["before_experiment_control", "after_method_control", "after_experiment_control", "cleanup_control"]


def before_experiment_control(context: Experiment, configuration: Configuration = None,
                              name: str = "experiment", **kwargs) -> None:
    try:
        settings = settings_from(configuration, context.get("configuration"))
    except ValueError as exc:
        raise InterruptExecution(f"configuration {exc}") from None
    session.begin(name, settings, context, configuration)


def after_method_control(context: Experiment, **kwargs) -> None:
    run = session.active()
    if run is not None:
        run.method_ended = True


def after_experiment_control(context: Experiment, state: Journal = None, **kwargs) -> None:
    session.end(state)


def cleanup_control() -> None:
    session.teardown()
