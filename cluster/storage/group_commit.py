"""Group commit for commit-to-device: many writes, one fdatasync, off the event loop.

Under commit-to-device a write is acknowledged (client reply, replica or migration ack)
only once it is on disk. An fdatasync per write, on the event loop, would serialise every
write behind the disk and stall heartbeats for as long as it takes. Instead the stores only
append (`DeviceStore.put` and friends), and whoever must acknowledge awaits `barrier()`:
the first waiter starts a flush, which writes out the stores' buffers on the loop (a copy
into the page cache) and runs the fdatasyncs in a worker thread; everyone who arrives while
it runs waits for it if it covers their writes, or for the next one if their writes came
after it started. `after(action)` runs an action (a fabric send) once every write made
before it is covered, keeping the order in which actions were given.

Progress is counted per store in appended entries: `marks()` are the counts now, and a
store's `committed` is the count its last finished fdatasync covered.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from cluster.storage.device import DeviceStore

log = logging.getLogger(__name__)


class GroupCommit:
    def __init__(self, stores: Sequence[DeviceStore]):
        self.stores = tuple(stores)  # the commit-to-device ones; none = nothing ever waits
        self.flushes = 0
        self._flush: asyncio.Future | None = None
        self._actions: list[Callable[[], object]] = []
        self._releasing: asyncio.Task | None = None

    def marks(self) -> tuple[int, ...]:
        return tuple(s.appended for s in self.stores)

    def _covered(self, marks: tuple[int, ...]) -> bool:
        return all(s.committed >= m for s, m in zip(self.stores, marks, strict=True))

    async def barrier(self) -> None:
        """Return once every write appended before the call is on disk (raises OSError if an
        fdatasync failed: nothing it should have covered may be acknowledged)."""
        marks = self.marks()
        while not self._covered(marks):
            if self._flush is None:
                self._flush = asyncio.ensure_future(self._run())
            await asyncio.shield(self._flush)  # one waiter giving up must not cancel the others' flush

    async def _run(self) -> None:
        try:
            started = [(s, s.start_commit()) for s in self.stores if s.appended > s.committed]
            await asyncio.to_thread(lambda: [s.sync() for s, _ in started])
            for s, mark in started:
                s.finish_commit(mark)
            self.flushes += 1
        finally:
            self._flush = None

    def after(self, action: Callable[[], object]) -> None:
        """Run `action` at once if nothing is waiting for the disk, else once every write made
        so far is covered; actions run in the order given."""
        if self._releasing is None and self._covered(self.marks()):
            action()
            return
        self._actions.append(action)
        if self._releasing is None:
            self._releasing = asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        try:
            while self._actions:
                batch, self._actions = self._actions, []
                try:
                    await self.barrier()  # covers every write made before any action of the batch
                except OSError:
                    log.exception("group commit failed: %d held messages dropped", len(batch))
                    continue  # their writes may not be durable: do not acknowledge them
                for action in batch:
                    action()
        finally:
            self._releasing = None

    async def drain(self) -> None:
        """Wait for the flush in progress (before the stores are closed)."""
        if self._flush is not None:
            await asyncio.wait([self._flush])
