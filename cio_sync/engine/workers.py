"""The worker threads: each sends one job at a time and hands the answers back to the main thread.

The jobs of the run's loop (records) and, once it is done, those of operations on the people
who left the file (see :mod:`cio_sync.engine.removal`) go through the same threads and adapter."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue
from types import TracebackType
from typing import cast

from ..clock import Clock
from ..outcome import Delivery, Status
from .adapters import Adapter, OperationJob
from .packer import Job


class Workers:
    """``count`` threads sending jobs through ``adapter``; answers come back in finishing order.

    Use as a context manager from one thread: leaving it lets the jobs in flight finish and
    stops the threads.
    """

    def __init__(self, adapter: Adapter, count: int, clock: Clock) -> None:
        # The adapter every job goes through: the loop's jobs and the operations after it (see run).
        self.adapter = adapter
        self._clock = clock
        # Set when the main thread should look at the answers (see _work); it waits on it.
        self._answered = threading.Event()
        # The main thread is woken once this few jobs, or fewer, wait for a worker.
        self._low = max(1, adapter.ready // 2)
        self._count = count
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="cio-sync")
        self._ready: SimpleQueue[Job | OperationJob | None] = SimpleQueue()
        self._done: SimpleQueue[tuple[Job | OperationJob, list[Delivery]]] = SimpleQueue()
        # Jobs handed over and not yet collected: in flight, or ready for the next free worker.
        self.busy = 0

    def __enter__(self) -> Workers:
        for _ in range(self._count):
            self._pool.submit(self._work)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        for _ in range(self._count):
            self._ready.put(None)
        self._pool.shutdown(wait=True)

    def submit(self, job: Job) -> None:
        """Queue ``job`` for the next free worker."""
        self._ready.put(job)
        self.busy += 1

    def collect(self, timeout: float | None = None) -> tuple[Job, list[Delivery]] | None:
        """Wait for the next finished job: the job, and one delivery per update, in order; None
        when none finished within ``timeout`` seconds (forever when None).

        The wait may last beyond the first answer: the workers end it once few jobs are left for
        them, or an answer stops the run (see _work); the answers come meanwhile are then
        collected one after another.
        """
        waited = False
        while True:
            # Cleared before looking, so that a wake-up set in between is not lost.
            self._answered.clear()
            try:
                done = self._done.get_nowait()
                break
            except Empty:
                if timeout is None:
                    self._answered.wait()  # no time to keep: the clock has no part in it
                elif waited or timeout <= 0:
                    return None
                else:
                    # Looked at once more after the wait: an answer that did not end it counts.
                    self._clock.wait(self._answered, timeout)
                    waited = True
        self.busy -= 1
        # Only the loop's jobs are out while it collects (see run).
        job = cast(Job, done[0])
        # Settled by the caller before it reads on: the adapter no longer counts its records.
        self.adapter.settled(job)
        return job, done[1]

    def run(self, jobs: Sequence[OperationJob]) -> list[list[Delivery]]:
        """Send ``jobs`` side by side and wait for all of them: one list of deliveries per job, in
        order. Only while none of the loop's jobs is out (they are answered through :meth:`collect`)."""
        assert self.busy == 0
        for job in jobs:
            self._ready.put(job)
        answers: dict[int, list[Delivery]] = {}
        for _ in jobs:
            answered, deliveries = self._done.get()
            answers[id(answered)] = deliveries
        return [answers[id(job)] for job in jobs]

    def _work(self) -> None:
        while (job := self._ready.get()) is not None:
            deliveries = self._send(job)
            self._done.put((job, deliveries))
            # Not kept while this worker waits for its next job: every idle worker would hold
            # its last batch's records alive, outside any bound on the records out.
            del job
            # Not woken for every answer while jobs still wait: that cost the main thread a
            # wake-up and its hand-over of the interpreter for each (v1 at P=25: 10 context
            # switches a record, against 6). Woken before the workers run out, it settles
            # every answer come meanwhile and hands their successors out together; woken at
            # once by an answer that may stop the run, so that the jobs waiting are not sent.
            if self._ready.qsize() <= self._low or _may_stop(deliveries):
                self._answered.set()

    def _send(self, job: Job | OperationJob) -> list[Delivery]:
        try:
            return self.adapter.send(job)
        except BaseException as e:  # a bug must not leave the main loop waiting forever
            return [Delivery(Status.FAILED, None, f"internal error: {type(e).__name__}: {e}")] * len(job.updates)


def _may_stop(deliveries: list[Delivery]) -> bool:
    """True for an answer that stops the run (a 401), or for none at all (enough in a row stop it
    too). Such a delivery is the whole request's: the first of its updates' says."""
    return any(d.stop is not None or (d.http_status is None and d.status is Status.FAILED) for d in deliveries[:1])
