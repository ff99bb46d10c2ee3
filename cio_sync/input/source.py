"""A run's records in file order, numbered; and, once it stops, the ones it did not read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import DataFileChanged
from .datafile import Records, UnreadTail


class Source:
    """Hands out ``records`` one at a time with their index (from 0), for one run.

    When they come from a data file (:class:`~cio_sync.datafile.Records`), what a stopped run
    did not read is found by its place in the file rather than read record by record.
    """

    def __init__(self, records: Iterable[object]) -> None:
        self._records = records if isinstance(records, Records) else None
        self._numbered = enumerate(records)
        self.exhausted = False
        # The data file stopped parsing mid-run: raised by sync() once what is in flight settled.
        self.broken: DataFileChanged | None = None

    def next(self) -> tuple[int, object] | None:
        """The next record and its index; None once they ran out or the data file changed
        (then :attr:`broken` says how)."""
        try:
            return next(self._numbered)
        except StopIteration:
            self.exhausted = True
        except DataFileChanged as e:
            self.broken = e
        return None

    def rest(self) -> tuple[Iterator[tuple[int, object]], UnreadTail | None]:
        """For a run that stops: the records not handed out, and the file's unread tail that
        stands for the rest of them (or None, when they are all in the first part). A data file
        found changed on the way ends them early, and sets :attr:`broken`."""
        if self.exhausted:
            return iter(()), None
        if self._records is None:
            return self._numbered, None
        first = self._records.handed
        try:
            held, tail = self._records.unread()
        except DataFileChanged as e:
            self.broken = self.broken or e
            return iter(()), None
        return self._guarded(enumerate(held, first)), tail

    def _guarded(self, numbered: Iterator[tuple[int, object]]) -> Iterator[tuple[int, object]]:
        # A file changed since its check is read on to the end after a stop, and may stop parsing
        # there: the run then ends as one whose file changed, with every record read counted.
        try:
            yield from numbered
        except DataFileChanged as e:
            self.broken = self.broken or e
