"""Seeded fault schedules: what goes wrong, when, and for how long.

A schedule is a sorted list of ``Fault(at_ms, kind, args)``. Every fault that starts also
ends (partitions heal, crashed nodes restart, paused nodes resume, loss and delay return to
normal) within the fault phase; at its end the simulator additionally heals everything,
and some schedules then split the network cleanly for good (``final_split``) so that the
simulator can check that each side forms its own cluster.
"""

import random
from dataclasses import dataclass

KINDS = ("partition", "one_way", "isolate", "crash", "pause", "loss", "delay")


@dataclass(frozen=True)
class Fault:
    at_ms: int
    kind: str  # e.g. "partition" / "partition_end", "crash" / "restart"
    args: tuple = ()

    def __str__(self) -> str:
        return f"{self.at_ms}ms {self.kind}{self.args if self.args else ''}"


@dataclass(frozen=True)
class Schedule:
    faults: tuple[Fault, ...]
    final_split: tuple[tuple[int, ...], ...] | None  # groups that stay apart after the fault phase


def _split(rng: random.Random, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    nodes = list(range(n))
    rng.shuffle(nodes)
    cut = rng.randint(1, n - 1)
    return tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:]))


def make_schedule(rng: random.Random, n_nodes: int, fault_ms: int, warmup_ms: int = 3000) -> Schedule:
    faults: list[Fault] = []
    if n_nodes > 1 and fault_ms > warmup_ms + 500:
        for _ in range(rng.randint(1, 6)):
            kind = rng.choice(KINDS)
            start = rng.randint(warmup_ms, fault_ms - 500)
            end = min(fault_ms, start + rng.randint(300, 8000))
            node = rng.randrange(n_nodes)
            if kind in ("partition", "one_way"):
                a, b = _split(rng, n_nodes)
                args = (a, b, kind == "partition")
                faults += [Fault(start, "partition", args), Fault(end, "partition_end", args)]
            elif kind == "isolate":
                args = ((node,), tuple(i for i in range(n_nodes) if i != node), True)
                faults += [Fault(start, "partition", args), Fault(end, "partition_end", args)]
            elif kind == "crash":
                faults += [Fault(start, "crash", (node,)), Fault(end, "restart", (node,))]
            elif kind == "pause":
                faults += [Fault(start, "pause", (node,)), Fault(end, "resume", (node,))]
            elif kind == "loss":
                faults += [Fault(start, "loss", (round(rng.uniform(0.02, 0.4), 3),)), Fault(end, "loss_end")]
            else:
                faults += [Fault(start, "delay", (rng.randint(5, 300),)), Fault(end, "delay_end")]
    final_split = _split(rng, n_nodes) if n_nodes > 1 and rng.random() < 0.25 else None
    return Schedule(tuple(sorted(faults, key=lambda f: f.at_ms)), final_split)
