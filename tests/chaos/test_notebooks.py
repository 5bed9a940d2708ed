"""The results notebooks executed headless (nbclient) on the test's real 2x2 sweep, rendered to
HTML (nbconvert); the numbers they print and the data their figures draw are checked
against the raw files, read here with the csv module, not through chaos.analysis."""

import csv
import io
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from tests.chaos.test_sweep import small_sweep

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_committed_notebooks_carry_no_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{path.name} has outputs: jupyter nbconvert --clear-output --inplace {path}")


def execute(name: str, env: dict, monkeypatch, probe: str) -> tuple[nbformat.NotebookNode, dict]:
    """Run every cell, then ``probe`` (code printing one JSON line) in the same kernel."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    probed = nb.cells.pop()  # the notebook as a user runs it, without the probe
    return nb, json.loads(probed.outputs[0]["text"])


def outputs(nb) -> list[str]:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return texts


def printed_table(nb, first_column: str) -> pd.DataFrame:
    """The DataFrame a cell displayed, parsed back from its text."""
    text = next(t for t in outputs(nb) if t.split() and t.split()[0] == first_column)
    return pd.read_csv(io.StringIO(text), sep=r"\s+")


def raw_numbers(run_dir: Path) -> dict:
    """From faults.csv and timeline.csv alone: the fault's window, then time to full replication
    before the return and after it (the first sample from which on nothing is missing)."""
    with (run_dir / "faults.csv").open(newline="") as src:
        fault = list(csv.DictReader(src))[-1]  # the row written when it ended
    start, end = float(fault["start"]), float(fault["end"])
    with (run_dir / "timeline.csv").open(newline="") as src:
        rows = [r for r in csv.DictReader(src) if r["sampled_at"]]

    def settled(since: float, until: float) -> float | None:
        window = [r for r in rows if since <= float(r["sampled_at"]) < until]
        full = [float(r["migrate_partitions_remaining"]) == 0 and float(r["partitions_below_rf"]) == 0 for r in window]
        last_missing = max((i for i, ok in enumerate(full) if not ok), default=-1)
        if last_missing + 1 >= len(window):
            return None
        return float(window[last_missing + 1]["sampled_at"]) - since

    return {"full_replication_s": settled(start, end), "rebalance_s": settled(end, float("inf")),
            "below_rf_max": max(int(r["partitions_below_rf"]) for r in rows),
            "errors": sum(float(r["errors"]) for r in rows if r["errors"])}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rebalance_settings_notebook_on_the_sweep(tmp_path_factory, monkeypatch, tmp_path):
    sweep_dir = small_sweep(tmp_path_factory)["dir"]
    probe = ("import json; print(json.dumps({'tradeoff': fig_tradeoff.axes[0].collections[0].get_offsets().tolist(), "
             "'below_rf': {l.get_label(): l.get_ydata().tolist() for l in fig_below_rf.axes[0].get_lines()}}))")
    nb, figures = execute("rebalance_settings.ipynb", {"REFCLUSTER_SWEEP": str(sweep_dir)}, monkeypatch, probe)

    with (sweep_dir / "index.csv").open(newline="") as src:
        index = {row["run_id"]: row for row in csv.DictReader(src)}
    per_run = printed_table(nb, "run_id").set_index("run_id")
    assert sorted(per_run.index) == ["r1", "r2", "r3", "r4"]
    for run_id, row in index.items():
        raw = raw_numbers(sweep_dir / row["run_folder"])
        shown = per_run.loc[run_id]
        assert raw["full_replication_s"] is not None and raw["rebalance_s"] is not None, raw
        assert shown["full_replication_s"] == pytest.approx(raw["full_replication_s"], abs=0.006), run_id
        assert shown["rebalance_s"] == pytest.approx(raw["rebalance_s"], abs=0.006), run_id
        assert (shown["below_rf_max"], shown["errors"]) == (raw["below_rf_max"], raw["errors"]), run_id
        assert shown["setting"] == f"migrate_threads={row['migrate_threads']},migrate_sleep_us={row['migrate_sleep_us']}"
        timeline = pd.read_csv(sweep_dir / row["run_folder"] / "timeline.csv")
        line = figures["below_rf"][f"{shown['setting']} ({run_id})"]
        assert line == timeline["partitions_below_rf"].tolist()

    per_setting = printed_table(nb, "setting").set_index("setting")
    assert (per_setting["runs"] == 1).all()
    for _, shown in per_run.iterrows():  # one repetition: the setting's mean is the run
        assert per_setting.loc[shown["setting"], "rebalance_s"] == shown["rebalance_s"]
    points = [value for point in figures["tradeoff"] for value in point]
    assert points == pytest.approx(per_setting[["rebalance_s", "p99_cost_ms"]].to_numpy().ravel().tolist(), abs=0.006)
    claims = next(t for t in outputs(nb) if t.startswith("rebalance_s: fastest")).splitlines()
    assert [c.split(":")[0] for c in claims] == ["rebalance_s", "full_replication_s"]
    assert all(c.endswith("the claim inconclusive (repetitions too few or too spread to tell)") for c in claims)

    html, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "rebalance_settings.html").write_text(html)
    assert html.count('src="data:image/png') == 2 and "the claim inconclusive" in html


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compare_runs_notebook_puts_the_runs_on_one_timeline(tmp_path_factory, monkeypatch, tmp_path):
    sweep_dir = small_sweep(tmp_path_factory)["dir"]
    with (sweep_dir / "index.csv").open(newline="") as src:
        index = list(csv.DictReader(src))
    first, last = index[0], index[-1]
    env = {"REFCLUSTER_RUNS": f"{sweep_dir / first['run_folder']}:{sweep_dir / last['run_folder']}"}
    probe = ("import json; print(json.dumps({ax.get_title(): {l.get_label(): [l.get_xdata().tolist(), "
             "l.get_ydata().tolist()] for l in ax.get_lines()} for ax in fig_compare.axes}))")
    nb, panels = execute("compare_runs.ipynb", env, monkeypatch, probe)

    table = printed_table(nb, "run").set_index("run")
    for row in (first, last):
        label, raw = Path(row["run_folder"]).name, raw_numbers(sweep_dir / row["run_folder"])
        assert table.loc[label, "rebalance_s"] == pytest.approx(raw["rebalance_s"], abs=0.006)
        timeline = pd.read_csv(sweep_dir / row["run_folder"] / "timeline.csv")
        with (sweep_dir / row["run_folder"] / "faults.csv").open(newline="") as src:
            start = float(next(csv.DictReader(src))["start"])
        x, y = panels["partitions below full replication"][label]
        assert x == pytest.approx((timeline["time"] - start).tolist())  # t = 0 at each run's fault
        assert y == timeline["partitions_below_rf"].tolist()
        x, y = panels["throughput"][label]
        assert y == pytest.approx(timeline["ops"].tolist(), nan_ok=True)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "compare_runs.html").write_text(html)
    assert html.count('src="data:image/png') == 1
