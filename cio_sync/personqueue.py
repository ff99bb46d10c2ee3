"""Each person's updates in file order: one outstanding at a time, the later ones waiting behind it."""

from __future__ import annotations

from collections import deque

from .mapping import PersonUpdate


class PersonQueue:
    """Holds a person's later updates back until their earlier one is finished.

    Updates come in through :meth:`admit` in file order; an update goes out (is *outstanding*)
    only when its person has nothing else outstanding. :meth:`finish` is the one place that
    decides what follows a finished update: the person's next one, in file order. Memory is
    bounded by the caller, who stops admitting while the queue is :attr:`full`. Pure data: no
    threads, no I/O.
    """

    def __init__(self, limit: int) -> None:
        # Every person with an update outstanding -> their later updates, oldest first.
        self._behind: dict[str, deque[PersonUpdate]] = {}
        self.waiting = 0
        self.limit = limit

    @property
    def full(self) -> bool:
        """True when as many updates wait as the limit allows: admit no more until some finish."""
        return self.waiting >= self.limit

    def admit(self, update: PersonUpdate) -> PersonUpdate | None:
        """``update`` when it may go now (it is then outstanding); None when it waits its turn."""
        key = update.key
        queue = self._behind.get(key)
        if queue is None:
            self._behind[key] = deque()
            return update
        queue.append(update)
        self.waiting += 1
        return None

    def finish(self, update: PersonUpdate) -> PersonUpdate | None:
        """The outstanding ``update`` is done: the person's next update (now outstanding), or None."""
        key = update.key
        queue = self._behind[key]
        if not queue:
            del self._behind[key]
            return None
        self.waiting -= 1
        return queue.popleft()

    def drain(self) -> list[PersonUpdate]:
        """Every waiting update, each person's in file order, for a run that stops; none wait after."""
        left = [update for queue in self._behind.values() for update in queue]
        self._behind.clear()
        self.waiting = 0
        return left
