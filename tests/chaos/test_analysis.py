"""chaos.analysis on run folders written by hand, so that every number has a known answer."""

import csv
import json

import pandas as pd
import pytest

from chaos import analysis
from chaos.results import Fault, RunFolder

T0 = 1_000_000  # unix second of the first sample
FAULT = Fault("kill_rack", ("n2",), T0 + 4.5, T0 + 9.5)


def timeline(n2_sent, remaining, below_rf, single, p99, ops=100):
    """A 2-node timeline: n1 sends nothing; n2's cumulative migrate_records_transmitted given."""
    rows = []
    for i in range(len(remaining)):
        rows.append({"time": T0 + i, "sampled_at": T0 + i + 0.05, "nodes_up": 2, "cluster_size_min": 2,
                     "cluster_size_max": 2, "migrate_partitions_remaining": remaining[i],
                     "partitions_below_rf": below_rf[i], "partitions_single_copy": single[i],
                     "n1.cluster_size": 2, "n1.cluster_key": "AA", "n1.migrate_records_transmitted": 0,
                     "n2.cluster_size": 2, "n2.cluster_key": "AA", "n2.migrate_records_transmitted": n2_sent[i],
                     "READ.p99_ms": p99[i], "UPDATE.p99_ms": p99[i] / 2, "READ.p99.9_ms": 2 * p99[i],
                     "UPDATE.p99.9_ms": p99[i], "ops": ops, "errors": 1})
    return pd.DataFrame(rows)


def write_run(path, frame, fault=FAULT, lost=0):
    run = RunFolder(path)
    run.path.mkdir(parents=True)
    frame.to_csv(run / "timeline.csv", index=False)
    run.add_fault(fault)
    run.write_safety({"counts": {"lost": lost}})
    return run


# seconds 0..13: fault at 4.5 (second 5 is the first after it), migrations 6..7, full from 8,
# the return at 9.5, migrations again 11..12, full from 13
REMAINING = [0, 0, 0, 0, 0, 0, 50, 20, 0, 0, 0, 80, 40, 0]
BELOW_RF = [0, 0, 0, 0, 0, 100, 60, 10, 0, 0, 0, 5, 0, 0]
SENT = [0, 0, 0, 0, 0, 0, 30, 60, 60, 60, 20, 40, 90, 90]  # n2 restarted in second 10: its counter from 0
P99 = [9, 10, 10, 12, 10, 300, 40, 60, 10, 10, 10, 30, 50, 10]


def test_run_metrics_of_a_known_timeline(tmp_path):
    run = write_run(tmp_path / "run", timeline(SENT, REMAINING, BELOW_RF, BELOW_RF, P99), lost=3)
    m = analysis.run_metrics(run)
    assert m["full_replication_s"] == pytest.approx(8.05 - 4.5)
    assert m["rebalance_s"] == pytest.approx(13.05 - 9.5)  # second 8..10 were full, but before the return
    assert (m["below_rf_s"], m["single_copy_s"], m["below_rf_max"]) == (4, 4, 100)
    assert m["records_migrated"] == 30 + 30 + 20 + 20 + 50  # after the restart's drop, its 20 are new
    assert m["migrating_s"] == 4 and m["migration_rate"] == pytest.approx(150 / 4)
    # load seconds 1..12 (0 and 13 partial); before: 1..4 -> p99 10, 10, 12, 10; migrating: 6, 7, 11, 12
    assert m["p99_before_ms"] == 10 and m["p99_migrating_ms"] == pytest.approx(45)
    assert m["p99_cost_ms"] == pytest.approx(35)
    assert m["p999_before_ms"] == 20 and m["p999_migrating_ms"] == pytest.approx(90)
    assert m["ops_before"] == 100 and m["errors"] == 14 and m["writes_lost"] == 3


def test_a_cluster_that_never_recovers_reports_none(tmp_path):
    stuck = [0, 0, 0, 0, 0] + [10] * 9
    run = write_run(tmp_path / "run", timeline([0] * 14, stuck, stuck, stuck, P99))
    m = analysis.run_metrics(run)
    assert m["full_replication_s"] is None and m["rebalance_s"] is None and m["migration_rate"] == 0


def make_sweep(root, settings_runs):
    """A sweep folder: settings_runs = [(threads, repetition, remaining, p99), ...]."""
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps({"experiment": "chaos/rack_breaker.yaml",
                                                 "grid": {"migrate_threads": ["1", "4"]}, "vars": {}, "repeat": 2}))
    with (root / "index.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["run_id", "repetition", "migrate_threads", "run_folder", "status"])
        for n, (threads, rep, remaining, p99) in enumerate(settings_runs, 1):
            folder = f"runs/r{n}/x-rack_breaker"
            write_run(root / folder, timeline([0] * len(remaining), remaining, remaining, remaining, p99))
            writer.writerow([f"r{n}", rep, threads, folder, "completed"])
        writer.writerow(["r9", 1, "4", "", "interrupted"])  # not finished: left out
    return analysis.load_sweep(root)


def slow_return(extra):
    """Migrations remaining from the return (second 10) on for ``extra`` seconds."""
    return [0] * 10 + [5] * extra + [0] * 4


def test_per_setting_means_and_the_claim(tmp_path):
    fast_costly = [10] * 10 + [200] * 2 + [10] * 4
    slow_cheap = [10] * 10 + [20] * 6 + [10] * 4
    sweep = make_sweep(tmp_path / "sweep", [("1", 1, slow_return(6), slow_cheap), ("4", 1, slow_return(2), fast_costly),
                                            ("1", 2, slow_return(5), slow_cheap), ("4", 2, slow_return(2), fast_costly)])
    runs = analysis.per_run(sweep)
    assert list(runs["run_id"]) == ["r1", "r2", "r3", "r4"]
    table = analysis.per_setting(runs)
    assert table.loc["migrate_threads=1", "runs"] == 2
    # rebalance = return (9.5) -> first full sample: 10 + extra (+0.05)
    assert table.loc["migrate_threads=1", "rebalance_s"] == pytest.approx((6.55 + 5.55) / 2)
    assert table.loc["migrate_threads=4", "rebalance_s"] == pytest.approx(2.55)
    assert table.loc["migrate_threads=4", "p99_cost_ms"] == pytest.approx(190)
    assert table.loc["migrate_threads=1", "p99_cost_ms"] == pytest.approx(10)
    check = analysis.claim_check(table)
    assert check["verdict"] == "holds" and check["fastest"] == "migrate_threads=4", check

    # the same speeds with the latency costs swapped: faster and cheaper contradicts the claim
    swapped = table.assign(p99_cost_ms=table["p99_cost_ms"][::-1].to_numpy())
    assert analysis.claim_check(swapped)["verdict"] == "contradicted"
    # overlapping repetitions, or a single one, cannot tell
    overlap = table.assign(rebalance_s_max=[9.0, 9.0])
    assert analysis.claim_check(overlap)["verdict"] == "inconclusive"
    assert analysis.claim_check(table.assign(runs=[1, 1]))["verdict"] == "inconclusive"
    # while the rack is down both settings recovered alike (the same timelines before the return)
    assert table["full_replication_s_min"].tolist() == table["full_replication_s_max"].tolist()
    assert analysis.claim_check(table, "full_replication_s")["verdict"] == "inconclusive"


def test_figures_draw_the_tables_numbers(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", [("1", 1, slow_return(6), P99 + [10] * 6),
                                            ("4", 1, slow_return(2), P99 + [10, 10])])
    table = analysis.per_setting(analysis.per_run(sweep))
    points = analysis.plot_tradeoff(table).axes[0].collections[0].get_offsets()
    assert points.tolist() == table[["rebalance_s", "p99_cost_ms"]].to_numpy().tolist()

    long = analysis.below_rf_over_time(sweep)
    lines = analysis.plot_below_rf(long).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["migrate_threads=1 (r1)", "migrate_threads=4 (r2)"]
    assert list(lines[0].get_xdata()) == [t - 4.5 for t in range(20)]
    assert list(lines[0].get_ydata()) == slow_return(6)

    runs = analysis.sweep_runs(sweep)
    fig = analysis.plot_compare(analysis.aligned(runs), analysis.fault_spans(runs), ["migration_rate", "p99_ms"])
    p99_line = fig.axes[1].get_lines()[1]
    assert list(p99_line.get_ydata()) == P99 + [10, 10]  # READ is the worse operation
    assert analysis.fault_spans(runs)["r1:migrate_threads=1"] == [(0.0, 5.0)]
