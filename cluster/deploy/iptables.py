"""Real network partitions between local nodes on their own loopback addresses (root only).

    with Partition(["127.0.0.2"], ["127.0.0.3", "127.0.0.4"]):
        ...  # every packet between the two sides is dropped (or refused, reject=True)

The rules live in a chain of their own, named for this process, reached by one jump from
INPUT: a packet dropped on arrival is lost as on a wire, and the sender only learns of it by
missing acknowledgements (one dropped in OUTPUT would be reported to the sending socket at
once, and TCP would retry every few hundred ms instead of backing off). `heal()` (also on
leaving the block, whatever happened in it) removes the jump, flushes and deletes the
chain: nothing else in the firewall is touched. Other addresses (clients on 127.0.0.1)
pass untouched.
"""

import os
import shutil
import subprocess


def unavailable() -> str | None:
    """Why partitions cannot be made here, or None if they can."""
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    if os.geteuid() != 0:
        return "iptables needs root"
    probe = subprocess.run(["iptables", "-w", "-n", "-L", "INPUT"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"iptables does not work here: {probe.stderr.strip()}"
    return None


def _iptables(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode == 0


def chain_exists(chain: str) -> bool:
    return _iptables("-n", "-L", chain, check=False)


class Partition:
    """Cuts every address of `side_a` off from every address of `side_b`, both ways.

    Packets are dropped (a silent network), or with `reject` answered by a TCP reset
    (a peer that refuses)."""

    def __init__(self, side_a, side_b, reject: bool = False):
        self.pairs = [(a, b) for a in side_a for b in side_b]
        self.reject = reject
        self.chain = f"REFCLUSTER-{os.getpid()}"
        self.active = False

    def cut(self) -> "Partition":
        target = ["-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"] if self.reject else ["-j", "DROP"]
        _iptables("-N", self.chain)
        self.active = True
        try:
            if self.reject:  # the resets themselves must get through
                _iptables("-A", self.chain, "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "RETURN")
            for a, b in self.pairs:
                _iptables("-A", self.chain, "-s", a, "-d", b, *target)
                _iptables("-A", self.chain, "-s", b, "-d", a, *target)
            _iptables("-I", "INPUT", "-j", self.chain)
        except BaseException:
            self.heal()
            raise
        return self

    def heal(self) -> None:
        if not self.active:
            return
        while _iptables("-D", "INPUT", "-j", self.chain, check=False):
            pass
        _iptables("-F", self.chain)
        _iptables("-X", self.chain)
        self.active = False

    def __enter__(self) -> "Partition":
        return self.cut()

    def __exit__(self, *exc) -> None:
        self.heal()
