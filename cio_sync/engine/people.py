"""What a run knows about each person, in one place: their records waiting in file order, whether
one of their writes is out, the stamp their next write must exceed, whether their ledger entry is
to be withdrawn before that write leaves, and whether one of their records did not sync (then the
rest are held back: sent, they would overtake it).

Pure data on an injected clock: no threads, no I/O but the spill of failed people to a temporary
file when there are very many of them, so that memory stays flat whatever fails.
"""

from __future__ import annotations

import dataclasses
import heapq
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import cast

from ..input.mapping import InvalidRecord, PersonUpdate
from ..state.ledger import Known

# A person's record on its way: to be sent, or to be settled as invalid in its turn.
Work = PersonUpdate | InvalidRecord


@dataclass(slots=True)
class Person:
    """One person with something under way, or something the run must remember a moment longer."""

    key: str
    # Their later records, in file order, behind the one that is out (made for the first of them:
    # most people have none).
    waiting: deque[Work] | None = None
    # One of their records is out: being sent, held for its second, or waiting for a batch.
    busy: bool = False
    # The stamp of their last write that went without a clear answer: the next must exceed it.
    unclear: int | None = None
    # Monotonic time before which their next write is not stamped (its second has not begun).
    ready_at: float = 0.0
    # The ledger vouches for another body than their update that is out (or may: it could not be
    # read): that entry is withdrawn before the update leaves.
    withdraw: bool = False


class _Out(Person):
    """The one person object shared by everyone with a record out and nothing else to remember,
    as most people are: made once, never changed (:meth:`People._own` gives a person one of
    their own before anything about them changes)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"the shared person cannot change ({name}): People._own gives one of their own")


_OUT = object.__new__(_Out)
for _name, _value in dataclasses.asdict(Person("", busy=True)).items():
    object.__setattr__(_OUT, _name, _value)


class People:
    """Every person this run has something under way for. Records come in through :meth:`admit`
    in file order; one record per person is out at a time, and :meth:`finish` is the one place
    that decides what follows it. Memory is bounded by the caller, who stops admitting while
    :attr:`full`, and by :class:`FailedPeople` for the people whose records did not sync."""

    def __init__(self, limit: int, floor: Callable[[], int | None] = lambda: None) -> None:
        # The lowest stamp a write made now would carry (None: stamps are off).
        self._floor = floor
        self._people: dict[str, Person] = {}
        # Records waiting behind their person's, counted for :attr:`full`.
        self.waiting = 0
        self.limit = limit
        self.failed = FailedPeople()
        # Updates held for their person's next second: (ready_at, file index, update), soonest first.
        self._held: list[tuple[float, int, PersonUpdate]] = []
        self._lingering = _Lingering(self._people)

    @property
    def full(self) -> bool:
        """True when as many records wait as the limit allows: admit no more until some finish."""
        return self.waiting >= self.limit

    def admit(self, work: Work, key: str) -> Work | None:
        """``work`` when it may go now (its person's is then out); None when it waits its turn."""
        person = self._people.get(key)
        if person is None:
            self._people[key] = _OUT
            return work
        if person.busy:
            if person.waiting is None:
                person = self._own(key)
                person.waiting = deque()
            person.waiting.append(work)
            self.waiting += 1
            return None
        person.busy = True
        return work

    def admit_run(self, keys: Sequence[str | None]) -> bool:
        """Admit the records of ``keys`` all at once, when each names a person of their own with
        nothing under way (True: each is now out), as :meth:`admit` would one by one; else none
        (False)."""
        people = self._people
        if None in keys or len(set(keys)) != len(keys) or not people.keys().isdisjoint(keys):
            return False
        people.update(zip(cast("Sequence[str]", keys), repeat(_OUT)))
        return True

    def finish_out(self, keys: Iterable[str]) -> list[str]:
        """The records of ``keys`` that were out are settled: each person with nothing more to
        remember is forgotten, as :meth:`finish` forgets them. The others, in order, are left
        for :meth:`finish`."""
        people, rest = self._people, []
        for key in keys:
            if people[key] is _OUT:
                del people[key]
            else:
                rest.append(key)
        return rest

    def finish(self, key: str, now: float) -> Work | None:
        """``key``'s record that was out is settled: their next record (now out), or None."""
        person = self._people[key]
        if person is _OUT:
            del self._people[key]
            return None
        if person.waiting:
            self.waiting -= 1
            return person.waiting.popleft()
        person.busy = False
        # The stamps' floor is asked only of a person with an unclear write: most have none.
        if person.ready_at <= now and (person.unclear is None or _done_with(person, now, self._floor())):
            del self._people[key]
            return None
        self._lingering.keep(person, now)
        return None

    def unclear(self, key: str, stamp: int, ready_at: float) -> None:
        """``key``'s write stamped at most ``stamp`` went without a clear answer: their next write
        is stamped later, and not before ``ready_at``."""
        person = self._own(key)
        person.unclear = stamp if person.unclear is None else max(person.unclear, stamp)
        person.ready_at = max(person.ready_at, ready_at)

    def hold(self, update: PersonUpdate, now: float) -> bool:
        """True when ``update`` must wait for its person's next second: kept until :meth:`due`."""
        person = self._people[update.key]
        if person.ready_at <= now:
            return False
        heapq.heappush(self._held, (person.ready_at, update.index, update))
        return True

    def due(self, now: float) -> PersonUpdate | None:
        """A held update whose time has come (taken out), or None; people kept for nothing more
        are forgotten on the way."""
        self._lingering.forget(now, self._floor())
        if self._held and self._held[0][0] <= now:
            return heapq.heappop(self._held)[2]
        return None

    def next_due(self, now: float) -> float | None:
        """Seconds until the soonest held update is due (0 when it is); None when none is held."""
        return max(0.0, self._held[0][0] - now) if self._held else None

    def take_unclear(self, key: str) -> int | None:
        """The stamp ``key``'s next write must exceed (forgotten once asked: it is being written)."""
        person = self._people[key]
        stamp = person.unclear
        if stamp is not None:
            person.unclear = None
        return stamp

    def compared(self, key: str, known: Known, withdraw: bool) -> Known:
        """The ledger compared ``key``'s update that is out: ``known`` (returned as is), and
        whether their entry is to be withdrawn before it leaves (see :meth:`withdrawing`)."""
        if withdraw or self._people[key].withdraw:
            self._own(key).withdraw = withdraw
        return known

    def withdrawing(self, updates: Iterable[PersonUpdate]) -> list[str]:
        """The people of ``updates``, about to be sent, whose ledger entry is to be withdrawn first."""
        found = []
        for update in updates:
            person = self._people.get(update.key)
            if person is not None and person.withdraw:
                person.withdraw = False
                found.append(update.key)
        return found

    def _own(self, key: str) -> Person:
        """``key``'s person, as an object of their own (made from the shared one if need be)."""
        person = self._people[key]
        if person is _OUT:
            person = self._people[key] = Person(key, busy=True)
        return person

    def drain(self) -> list[Work]:
        """For a run that stops: every held and waiting record, each person's in file order."""
        held = [update for _, _, update in sorted(self._held)]
        waiting = [work for person in self._people.values() for work in person.waiting or ()]
        self._held.clear()
        self._people.clear()
        self._lingering.clear()
        self.waiting = 0
        return [*held, *waiting]

    def close(self) -> None:
        """Let go of the spill file, if any."""
        self.failed.close()


class _Lingering:
    """The people kept only for what their next write must wait for, forgotten from ``people``
    once neither holds: their ready_at (oldest first), and the stamp of their unclear write
    (lowest first), which the run's stamps must have passed. Time alone is not enough: with a
    ledger's floor or a wall clock set back, stamps run ahead of the clock."""

    def __init__(self, people: dict[str, Person]) -> None:
        self._people = people
        self._ready: deque[tuple[float, str]] = deque()
        self._unclear: list[tuple[int, str]] = []

    def keep(self, person: Person, now: float) -> None:
        """``person``, with nothing out, is kept for their ready_at or unclear write."""
        if person.ready_at > now:
            self._ready.append((person.ready_at, person.key))
        if person.unclear is not None:
            heapq.heappush(self._unclear, (person.unclear, person.key))

    def forget(self, now: float, floor: int | None) -> None:
        """Forget the people kept for nothing more, now that it is ``now`` and stamps are ``floor``."""
        while self._ready and self._ready[0][0] <= now:
            self._drop_if_done(self._ready.popleft()[1], now, floor)
        while self._unclear and (floor is None or self._unclear[0][0] < floor):
            self._drop_if_done(heapq.heappop(self._unclear)[1], now, floor)

    def clear(self) -> None:
        """Forget everyone kept."""
        self._ready.clear()
        self._unclear.clear()

    def _drop_if_done(self, key: str, now: float, floor: int | None) -> None:
        person = self._people.get(key)
        if person is not None and _done_with(person, now, floor):
            del self._people[key]


def _done_with(person: Person, now: float, floor: int | None) -> bool:
    """True when nothing of ``person`` needs remembering: nothing out, their second begun, and any
    write made now stamped later than their unclear one."""
    return (
        not person.busy
        and person.ready_at <= now
        and (person.unclear is None or floor is None or person.unclear < floor)
    )


# People remembered in memory before the rest go to a temporary file: about 10 MB of them.
SPILL_AFTER = 50_000


class FailedPeople:
    """The people with a record that did not sync, and that record's index: in memory up to
    :data:`SPILL_AFTER` people, then in a temporary SQLite file, so that a run where every write
    fails holds as little memory as one where every write succeeds."""

    def __init__(self, spill_after: int = SPILL_AFTER) -> None:
        self._memory: dict[str, int] = {}
        self._spill_after = spill_after
        self._disk: sqlite3.Connection | None = None

    def __bool__(self) -> bool:
        """True once anyone's record did not sync."""
        return bool(self._memory) or self._disk is not None

    def add(self, key: str, index: int) -> None:
        """``key``'s record ``index`` did not sync (an earlier one that did not, if any, is kept)."""
        if key in self._memory:
            return
        if self._disk is None and len(self._memory) < self._spill_after:
            self._memory[key] = index
            return
        disk = self._disk or self._open()
        disk.execute("INSERT OR IGNORE INTO failed VALUES (?, ?)", (key, index))

    def none_of(self, keys: Iterable[str]) -> bool:
        """True when none of ``keys`` had a record that did not sync, told at once; False also
        when that cannot be told without a look at the disk (ask :meth:`get` then)."""
        return self._disk is None and self._memory.keys().isdisjoint(keys)

    def get(self, key: str) -> int | None:
        """The index of ``key``'s first record that did not sync, or None."""
        found = self._memory.get(key)
        if found is not None or self._disk is None:
            return found
        row = self._disk.execute("SELECT record FROM failed WHERE person = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Remove the temporary file, if one was made."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    def _open(self) -> sqlite3.Connection:
        # An empty name is SQLite's private temporary database: kept in memory while small, then
        # in a file it unlinks at once, so that nothing is left behind however the run ends.
        db = sqlite3.connect("", isolation_level=None)
        db.execute("PRAGMA cache_size=-2000")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE failed (person TEXT PRIMARY KEY, record INTEGER NOT NULL) WITHOUT ROWID")
        self._disk = db
        return db
