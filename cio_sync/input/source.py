"""A run's records in file order, numbered, a run at a time; and, once it stops, the ones it did not read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..errors import DataFileChanged
from .datafile import Records, UnreadTail
from .runs import in_runs


class Source:
    """Hands out ``records`` a run at a time with the index of the first (from 0), for one run.

    When they come from a data file (:class:`~cio_sync.datafile.Records`), a run is as the file
    was read; what a stopped run did not read is found by its place in the file rather than read
    record by record. Other records are handed out one, then two, four and so on, up to a few
    hundred at a time.
    """

    def __init__(self, records: Iterable[object]) -> None:
        self._records = records if isinstance(records, Records) else None
        self._runs = in_runs(records) if self._records is None else None
        # Records handed out: the index of the next.
        self.handed = 0
        self.exhausted = False
        # The data file stopped parsing mid-run: raised by sync() once what is in flight settled.
        self.broken: DataFileChanged | None = None

    def next_run(self) -> tuple[int, Sequence[object]] | None:
        """The next records and the index of the first; None once they ran out or the data file
        changed (then :attr:`broken` says how)."""
        try:
            if self._records is not None:
                run = self._records.next_run()
            else:
                assert self._runs is not None
                run = next(self._runs, [])
        except DataFileChanged as e:
            self.broken = e
            return None
        if not run:
            self.exhausted = True
            return None
        first = self.handed
        self.handed += len(run)
        return first, run

    def rest(self) -> tuple[Iterator[tuple[int, object]], UnreadTail | None]:
        """For a run that stops: the records not handed out, and the file's unread tail that
        stands for the rest of them (or None, when they are all in the first part). A data file
        found changed on the way ends them early, and sets :attr:`broken`."""
        if self.exhausted:
            return iter(()), None
        if self._records is None:
            assert self._runs is not None
            return enumerate((record for run in self._runs for record in run), self.handed), None
        try:
            held, tail = self._records.unread()
        except DataFileChanged as e:
            self.broken = self.broken or e
            return iter(()), None
        return self._guarded(enumerate(held, self.handed)), tail

    def _guarded(self, numbered: Iterator[tuple[int, object]]) -> Iterator[tuple[int, object]]:
        # A file changed since its check is read on to the end after a stop, and may stop parsing
        # there: the run then ends as one whose file changed, with every record read counted.
        try:
            yield from numbered
        except DataFileChanged as e:
            self.broken = self.broken or e
