"""What a person (text, with a progress bar on a terminal) or a log shipper (JSON lines) sees.

Every sentence cio-sync writes for people is worded here.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import IO, Any, Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..engine.causes import CauseCount, cause_entries
from ..engine.plan import Plan
from ..engine.tally import SyncResult
from ..errors import ExitCode
from ..input.config import Config, Transport
from ..input.mapping import PersonUpdate, batch_item
from ..outcome import RecordOutcome, Status, StopReason
from ..redact import NO_SECRETS
from .progress import PROGRESS_INTERVAL, Snapshot, Ticker, progress_line
from .terminal import json_line, one_line, visible

# How often the progress display is refreshed, and how often JSON progress events are written.
BAR_INTERVAL = 0.1
JSON_PROGRESS_INTERVAL = 5.0


class Console(Protocol):
    """Everything the command tells its user while it runs, on standard error.

    Every text passes through ``redact`` on its way out: once the configuration is loaded it
    masks the credentials, whatever a server, the data file or an error message quoted.
    """

    redact: Callable[[str], str]

    @property
    def counts_every_record(self) -> bool:
        """True when :meth:`outcome` is to hear of every record (to show progress), else only of
        those not synced nor unchanged."""

    def started(self, source: str, count: int, url: str, parallelism: int) -> None:
        """The run is about to send ``count`` records."""

    def outcome(self, outcome: RecordOutcome) -> None:
        """One record is done."""

    def stopping(self, reason: StopReason) -> None:
        """A signal asked the run to stop."""

    def note(self, message: str) -> None:
        """Something worth saying that is not an error."""

    def planning(self, source: str, count: int) -> None:
        """A dry run is about to check ``count`` records."""

    def planned(self, plan: Plan, config: Config, code: ExitCode) -> None:
        """A dry run is over: what would have been sent."""

    def finished(self, result: SyncResult, code: ExitCode) -> None:
        """The run is over."""

    def error(self, message: str, code: ExitCode) -> None:
        """The run could not go on."""


class _Counts:
    """Running counts for progress displays."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.invalid = 0
        self.started = time.monotonic()

    def add(self, outcome: RecordOutcome) -> None:
        self.done += outcome.span
        if outcome.status is Status.FAILED:
            self.failed += 1
        elif outcome.status is Status.INVALID:
            self.invalid += 1

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class _Stream:
    """Standard error, or whatever stands for it, written so that it can never fail a run.

    Standard error may be closed (None) or unwritable (/dev/full, a closed pipe): the run's
    outcome, exit code and files must not depend on whether its messages could be shown.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        # Progress lines come from a timer's thread: one line at a time. Reentrant, since a
        # signal handler may write while the thread it interrupted is writing.
        self._lock = threading.RLock()

    def write(self, text: str) -> None:
        with self._lock:
            if self.stream is None:
                return
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # ValueError: the stream was closed under us
                self.stream = None

    def isatty(self) -> bool:
        try:
            return self.stream is not None and self.stream.isatty()
        except (OSError, ValueError):
            return False


class TextConsole:
    """Lines prefixed ``cio-sync:``; a progress bar when standard error is a terminal.

    ``quiet`` prints nothing unless the run went wrong. ``NO_COLOR`` is honoured by the bar.
    """

    def __init__(
        self,
        quiet: bool = False,
        stream: IO[str] | None = None,
        progress: bool | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timer: bool = True,
    ) -> None:
        self.redact: Callable[[str], str] = NO_SECRETS
        self._stream = _Stream(stream if stream is not None else sys.stderr)
        self._quiet = quiet
        self._show_bar = (not quiet and self._stream.isatty()) if progress is None else progress
        # Where no bar is drawn (a log, not a terminal), a progress line on a timer instead.
        self._lines = not quiet and not self._show_bar
        self._ticker = Ticker(self._progress, PROGRESS_INTERVAL, clock)
        self._timer = timer
        self._counts = _Counts()
        self._bar: Any = None
        self._task: Any = None
        self._next_refresh = 0.0
        # Set by a stop: the records still to come are only marked not attempted, and a bar that
        # kept counting them would look as if they were being sent.
        self._frozen = False

    @property
    def counts_every_record(self) -> bool:
        """True unless quiet: the bar, or the progress lines, count every record."""
        return self._show_bar or self._lines

    def _say(self, message: str) -> None:
        # Ids, values, paths and the workspace's words reach this line: none may drive the terminal.
        line = f"cio-sync: {visible(self.redact(message))}"
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            self._stream.write(line + "\n")

    def started(self, source: str, count: int, url: str, parallelism: int) -> None:
        self._counts = _Counts()
        self._counts.total = count
        if not self._quiet:
            self._say(f"syncing {records(count)} from {source} to {url} ({parallelism} at a time)")
        if self._show_bar and count:
            self._start_bar(count)
        elif self._lines:
            self._ticker.start(count, thread=self._timer)

    def _progress(self, snapshot: Snapshot) -> None:
        self._say(progress_line(snapshot))

    def _start_bar(self, count: int) -> None:
        from rich.console import Console as RichConsole
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        assert self._stream.stream is not None  # a bar is shown only on a terminal
        console = RichConsole(file=self._stream.stream, stderr=True)
        layout = bar_layout(console.width, count)
        columns: list[Any] = [TextColumn("cio-sync")] if layout.label else []
        columns += [BarColumn(bar_width=layout.bar), MofNCompleteColumn()]
        if layout.rate:
            columns.append(TextColumn("{task.fields[rate]:>9,.0f}/s"))
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
        if layout.problems:
            columns.append(TextColumn("failed {task.fields[failed]:,}  invalid {task.fields[invalid]:,}"))
        self._bar = Progress(*columns, console=console, transient=True)
        self._task = self._bar.add_task("sync", total=count, rate=0.0, failed=0, invalid=0)
        self._bar.start()

    def outcome(self, outcome: RecordOutcome) -> None:
        if self._lines:
            self._ticker.add(outcome)
        if self._bar is None or self._frozen:  # the counts feed the bar alone; the summary has its own
            return
        counts = self._counts
        counts.add(outcome)
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + BAR_INTERVAL
            self._bar.update(
                self._task, completed=counts.done, rate=counts.rate, failed=counts.failed, invalid=counts.invalid
            )

    def stopping(self, reason: StopReason) -> None:
        # Frozen, not stopped: this runs in a signal handler, which must not wait for the bar's thread.
        self._frozen = True
        self._ticker.stop()
        if not self._quiet:
            # Worded for the signal that came: a container's SIGTERM has no keyboard behind it.
            if reason is StopReason.INTERRUPTED:
                self._say("interrupted: letting requests in flight finish (Ctrl-C again to quit at once)")
            else:
                self._say("SIGTERM received: letting requests in flight finish (send it again to quit at once)")

    def note(self, message: str) -> None:
        if not self._quiet:
            self._say(message)

    def planning(self, source: str, count: int) -> None:
        self.note(dry_run_start(source, count))

    def planned(self, plan: Plan, config: Config, code: ExitCode) -> None:
        for update in plan.samples:
            self.note(describe_request(config, update))
        if self._quiet and code == ExitCode.OK:
            return
        for line in dry_run_lines(plan):
            self._say(line)

    def finished(self, result: SyncResult, code: ExitCode) -> None:
        self._stop_bar()
        if self._quiet and code == ExitCode.OK:
            return
        # Why the run stopped comes first: the records it left unsent may say the same thing many times.
        stopped = stop_line(result.stopped)
        if stopped is not None:
            self._say(stopped)
        for line in problem_lines(result.problems, result.causes):
            self._say(line)
        self._say(summary_line(result))

    def error(self, message: str, code: ExitCode) -> None:
        self._stop_bar()
        self._say(f"error: {message}")

    def _stop_bar(self) -> None:
        self._ticker.stop()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def stop_line(stopped: StopReason | None) -> str | None:
    """Why a run stopped early, for its summary; None when that needs no line of its own."""
    if stopped is StopReason.CREDENTIALS:
        return "error: the workspace refused the credentials (HTTP 401/403); stopped starting requests"
    if stopped in (StopReason.INTERRUPTED, StopReason.TERMINATED):
        assert stopped is not None
        return f"{stopped.value}: a re-run with the same files completes the sync"
    if stopped is StopReason.NO_PROGRESS:
        return (
            "error: no request made progress for --give-up-after seconds (only 429, 5xx or no answer); "
            "stopped starting requests (a re-run later, or with --failed's file, completes the sync)"
        )
    if stopped is StopReason.UNREACHABLE:
        return (
            "error: the Track API stopped answering; stopped starting requests "
            "(a re-run with the same files, or with --failed's file, completes the sync)"
        )
    return None


@dataclass(frozen=True)
class BarLayout:
    """Which parts of the progress bar fit a terminal's width, and the bar's own width."""

    bar: int
    label: bool = True
    rate: bool = True
    problems: bool = True


def bar_layout(width: int, total: int) -> BarLayout:
    """The most the progress line can show in ``width`` columns without cutting a number short.

    A part that does not fit is left out whole (the rate first, then the name or the failed and
    invalid counts) rather than shown as ``204…``: the final summary has every figure.
    """
    digits = len(str(total))
    # Widest renderings: "cio-sync", " 12,345/s", the counts; always "done/total" and "ETA 0:00:00".
    widths = {"label": 8, "rate": 11, "problems": 17 + 2 * len(f"{total:,}")}
    always = [2 * digits + 1, 3 + 1 + 8]
    choices = [
        BarLayout(0),
        BarLayout(0, rate=False),
        BarLayout(0, rate=False, label=False),
        BarLayout(0, rate=False, problems=False),
        BarLayout(0, rate=False, label=False, problems=False),
    ]
    for layout in choices:
        parts = always + [n for name, n in widths.items() if getattr(layout, name)]
        # One space between columns, the bar being one of them.
        room = width - sum(parts) - len(parts)
        if room >= 10 or layout is choices[-1]:
            return replace(layout, bar=max(10, min(40, room)))
    return choices[-1]


class JsonConsole:
    """One JSON object per line: ``start``, ``record`` (each failed or invalid one), ``progress``
    (every few seconds of a run), ``stopping``, ``summary`` and ``error`` events.

    ``quiet`` writes nothing unless the run went wrong, as the text does: then the first records
    that did not sync (as ``record`` events), their ``causes`` and the ``summary``; an ``error``
    always."""

    def __init__(
        self, stream: IO[str] | None = None, clock: Clock = SYSTEM_CLOCK, timer: bool = True, quiet: bool = False
    ) -> None:
        self.redact: Callable[[str], str] = NO_SECRETS
        self._stream = _Stream(stream if stream is not None else sys.stderr)
        # Not started before a run starts: a dry run hands on only its invalid records, so its
        # counts would not say how far through the file it is.
        self._ticker = Ticker(self._progress, JSON_PROGRESS_INTERVAL, clock)
        self._timer = timer
        self._quiet = quiet

    @property
    def counts_every_record(self) -> bool:
        """True unless quiet: the progress events count every record."""
        return not self._quiet

    def _emit(self, event: str, **fields: Any) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        masked = {name: self.redact(value) if isinstance(value, str) else value for name, value in fields.items()}
        text = json.dumps({"time": stamp, "event": event, **masked}, ensure_ascii=False)
        self._stream.write(json_line(text) + "\n")

    def started(self, source: str, count: int, url: str, parallelism: int) -> None:
        if self._quiet:
            return
        self._emit("start", source=source, records=count, url=url, parallelism=parallelism)
        self._ticker.start(count, thread=self._timer)

    def _progress(self, snapshot: Snapshot) -> None:
        self._emit(
            "progress",
            done=snapshot.done,
            total=snapshot.total,
            failed=snapshot.failed,
            invalid=snapshot.invalid,
            records_per_second=round(snapshot.rate, 1),
        )

    def outcome(self, outcome: RecordOutcome) -> None:
        if self._quiet:
            return  # whether the run went wrong is known at its end: the records come then
        if outcome.status is Status.FAILED or outcome.status is Status.INVALID:
            self._record(outcome)
        self._ticker.add(outcome)

    def _record(self, outcome: RecordOutcome) -> None:
        self._emit(
            "record",
            index=outcome.index,
            id=outcome.person_id,
            outcome=outcome.status.value,
            status=outcome.http_status,
            reason=outcome.reason,
        )

    def stopping(self, reason: StopReason) -> None:
        self._ticker.stop()
        if not self._quiet:
            self._emit("stopping", reason=reason.value)

    def note(self, message: str) -> None:
        if not self._quiet:
            self._emit("note", message=message)

    def planning(self, source: str, count: int) -> None:
        self.note(dry_run_start(source, count))

    def planned(self, plan: Plan, config: Config, code: ExitCode) -> None:
        for update in plan.samples:
            self.note(describe_request(config, update))
        if self._quiet:
            if code == ExitCode.OK:
                return
            for problem in plan.problems:
                self._record(problem)
        # The invalid records were each a "record" event already (when quiet, the first come
        # now); their causes come together.
        self._causes(plan.causes)
        self._emit(
            "summary",
            dry_run=True,
            exit_code=int(code),
            total=plan.total,
            valid=plan.valid,
            invalid=plan.invalid,
            held_back=plan.held_back,
            people=plan.people,
            to_send=plan.to_send,
            new=plan.new,
            changed=plan.changed,
            unchanged=plan.unchanged,
        )

    def finished(self, result: SyncResult, code: ExitCode) -> None:
        self._ticker.stop()
        if self._quiet:
            if code == ExitCode.OK:
                return
            for problem in result.problems:
                self._record(problem)
        self._causes(result.causes)
        self._emit(
            "summary",
            exit_code=int(code),
            total=result.total,
            synced=result.synced,
            unchanged=result.unchanged,
            failed=result.failed,
            invalid=result.invalid,
            not_attempted=result.not_attempted,
            retries=result.retries,
            elapsed_seconds=round(result.elapsed, 3),
            records_per_second=round(result.rate, 1),
            stopped=result.stopped.value if result.stopped is not None else None,
        )

    def error(self, message: str, code: ExitCode) -> None:
        self._ticker.stop()
        self._emit("error", message=message, exit_code=int(code))

    def _causes(self, causes: Sequence[CauseCount]) -> None:
        """One ``causes`` event for the records not synced, grouped by cause (none when all were)."""
        if not causes:
            return
        entries = cause_entries(causes, self.redact)
        self._emit("causes", causes=entries)


def describe(outcome: RecordOutcome) -> str:
    """One line for a person: ``record 17 (id "a/b"): failed: HTTP 400: ...``.

    One line whatever the id and the reason hold: a newline in either could fake a line.
    """
    person = f' (id "{one_line(outcome.person_id)}")' if outcome.person_id is not None else ""
    label = outcome.status.value.replace("_", " ")
    return f"record {outcome.index}{person}: {label}" + (f": {one_line(outcome.reason)}" if outcome.reason else "")


def summary_line(result: SyncResult) -> str:
    """The last line of a run: counts, elapsed time and rate."""
    parts = [f"{result.synced:,} synced"]
    if result.unchanged:
        parts.append(f"{result.unchanged:,} unchanged")
    parts += [f"{result.failed:,} failed", f"{result.invalid:,} invalid"]
    if result.not_attempted:
        parts.append(f"{result.not_attempted:,} not attempted")
    text = f"{records(result.total)}: {', '.join(parts)} in {result.elapsed:.1f}s ({result.rate:,.0f} records/s)"
    if result.retries:
        text += f"; {result.retries:,} resends"
    return text


def problem_lines(
    problems: Sequence[RecordOutcome], causes: Sequence[CauseCount], examples: int = 5, limit: int = 10
) -> list[str]:
    """The first ``examples`` problems a line each, as they were; then, when they do not tell
    it all, the records not synced grouped by cause, the most frequent ``limit`` a line each."""
    lines = [describe(o) for o in problems[:examples]]
    counted = sum(c.count for c in causes)
    if counted <= len(lines):
        return lines
    lines += [cause_line(c) for c in causes[:limit]]
    rest = causes[limit:]
    if rest:
        more = sum(c.count for c in rest)
        lines.append(f"... and {records(more)} of {len(rest):,} other causes")
    return lines


def cause_line(cause: CauseCount) -> str:
    """``49,513 records: mappings[3] ("age", as integer): not an integer, first at record 4``."""
    return f"{records(cause.count)}: {one_line(cause.cause)}, first at record {cause.first_index}"


def dry_run_start(source: str, count: int) -> str:
    """The opening line of a dry run."""
    return f"dry run: checking {records(count)} from {source}; nothing is sent"


def describe_request(config: Config, update: PersonUpdate) -> str:
    """A request as it would go on the wire, with the credentials redacted."""
    if config.transport is Transport.BATCH:
        return f"would send, in a POST {config.base_url}/api/v2/batch:\n  {batch_item(update).decode('utf-8')}"
    return (
        f"would send: PUT {config.base_url}/api/v1/customers/{update.path}\n"
        f"  Authorization: Basic <site id and API key, redacted>\n"
        f"  Content-Type: application/json\n"
        f"  {update.body.decode('utf-8')}"
    )


def records(count: int) -> str:
    """``1 record``, ``2,500 records``."""
    return f"{count:,} record" + ("" if count == 1 else "s")


def dry_run_lines(plan: Plan) -> list[str]:
    """The close of a dry run: a line per invalid record, then the counts."""
    lines = problem_lines(plan.problems, plan.causes)
    held = f", {plan.held_back:,} held back behind an invalid record" if plan.held_back else ""
    counted = f"{records(plan.total)}: {plan.valid:,} valid, {plan.invalid:,} invalid{held}"
    if plan.new is not None:
        compared = f"{plan.new:,} new, {plan.changed:,} changed, {plan.unchanged:,} unchanged"
        people = f"{plan.people:,} {_people(plan.people)}: {compared}"
    else:
        people = f"{plan.to_send:,} {_people(plan.to_send)} to write"
    lines.append(f"dry run: {counted}; {people}; nothing sent")
    return lines


def _people(count: int) -> str:
    return "person" if count == 1 else "people"
