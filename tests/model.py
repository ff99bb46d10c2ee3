"""The randomized model of cio-sync's promise, shared by ``make test`` (a few seeds) and ``make soak``.

One scenario, drawn from a seed: a handful of people, data files with repeated ids and several
records per person, and a sequence of runs against the emulator while it misbehaves (answers lost
after the write was applied, writes applied after the client gave up, 5xx, 429, dropped
connections, 207 answers of every shape, 5xx answers whose write lands later, informational 1xx
answers). Some runs are killed (SIGKILL) or stopped (SIGTERM) at a random moment; some run in
this process through the library, on a clock whose wall time steps back mid-run. The next run
then either feeds back the ``--failed`` file of a run that ended with exit 1 (or a signal), or runs
the data file again, which may have changed meanwhile. Some records cannot be cast (``n`` is an
integer): the user fixes them in ``--failed`` before feeding it back. With or without ``--state``,
through either transport. With ``--state``, some scenarios mirror the file (``whenRemoved``
delete, suppress or clear, with no guard): people leave and come back between versions of the
file, and a run that exits 0 must leave the workspace equal to the file, removals included. A
mirroring user runs the whole file again (fixed) rather than ``--failed``, which names only some.

What must hold: a run that exits 0 leaves every person as the data file, applied record by record
in file order, says; a run that ends otherwise leaves every person none of whose records is in
its ``--failed`` as the file says; the workspace never holds a person no file named; and once
the faults stop, the runs that follow (feeding back ``--failed``, fixed, or running the file
again) end with exit 0 and that same workspace.

    python -m tests.model --minutes 10     # the soak: scenarios until time runs out, then a count
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cio_sync import load_config, open_data_file, sync
from cio_sync.emulator import Drop, Emulator, Fault, Odd207
from cio_sync.emulator.rules import Choices
from cio_sync.errors import CioSyncError
from cio_sync.outcome import RecordOutcome, Status, Stop
from cio_sync.state.ledger import Ledger
from cio_sync.transport.client import HttpSettings

from .conftest import API_KEY, CLI, SITE_ID, cli_env, run_cli
from .fakeclock import QuickClock, Skipped
from .quick import child_env, quicken

FIELDS = ("a", "b", "c", "n")
VALUES = (0, 1, 2, "x", "y", "z", True, False)
# ``n`` is cast to an integer: "7" becomes 7, and "bad7" is an invalid record, fixed to "7".
NUMBERS = ("1", "2", "bad3", "bad4")
# Short enough that a delayed write outlives it; the delay of such a write.
TIMEOUT = 0.5
LATE = 0.8
Record = dict[str, Any]


@dataclass
class Tally:
    """What a number of scenarios went through."""

    scenarios: int = 0
    runs: int = 0
    killed: int = 0
    terminated: int = 0
    faults: int = 0
    exits: dict[int, int] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a person."""
        exits = ", ".join(f"exit {k}: {v}" for k, v in sorted(self.exits.items()))
        return (
            f"{self.scenarios} scenarios, {self.runs} runs ({exits}), {self.killed} killed with SIGKILL, "
            f"{self.terminated} stopped with SIGTERM, {self.faults} faults injected: every one converged"
        )


def fixed(records: list[Record]) -> list[Record]:
    """``records`` as the user fixes them: every ``n`` that could not be cast made a number."""
    return [{**r, "n": r["n"].removeprefix("bad")} if "n" in r else r for r in records]


def expected(records: list[Record]) -> dict[str, dict[str, Any]]:
    """Each person's attributes as the data file says, applied record by record in file order."""
    people: dict[str, dict[str, Any]] = {}
    for record in records:
        person = people.setdefault(str(record["id"]), {})
        person.update({k: int(v) if k == "n" else v for k, v in record.items() if k in FIELDS})
    return people


def differences(emulator: Emulator, records: list[Record], only: set[str] | None = None) -> list[str]:
    """Where the workspace differs from what the data file says (empty when it holds the file);
    with ``only``, for those people alone."""
    held = emulator.people()
    wrong = []
    for person, attributes in expected(records).items():
        if only is not None and person not in only:
            continue
        for name, value in attributes.items():
            got = held.get(person, {}).get(name, "<absent>")
            if got != value or type(got) is not type(value):
                wrong.append(f"{person}.{name}: workspace {got!r}, file {value!r}")
    return wrong


class Scenario:
    """One seeded scenario in its own directory, against ``emulator``."""

    def __init__(self, seed: int, emulator: Emulator, root: Path, tally: Tally, skipped: Skipped) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.emulator = emulator
        self.root = root
        self.tally = tally
        self.people = [f"p{i}" for i in range(self.rng.randint(1, 6))]
        self.transport = self.rng.choice(["v1", "batch"])
        self.state = self.rng.random() < 0.7
        self.mirror = (
            self.rng.choice(["delete", "suppress", "clear"]) if self.state and self.rng.random() < 0.5 else None
        )
        config = {
            "parallelism": self.rng.randint(1, 4),
            "userId": "id",
            "mappings": [{"from": name, "to": name, **({"as": "integer"} if name == "n" else {})} for name in FIELDS],
            "siteId": SITE_ID,
            "apiKey": API_KEY,
            "baseUrl": emulator.url,
            "transport": self.transport,
            **({"whenRemoved": self.mirror, "maxRemovals": "all"} if self.mirror else {}),
        }
        self.config = root / "configuration.json"
        self.config.write_text(json.dumps(config))
        self.version = 0
        self.runs = 0
        # Everyone any version of the data file named: the workspace may hold no one else.
        self.named: set[str] = set()
        # Mirroring: who the files of runs that did not end clean named since the last that did
        # (more than cio-sync keeps: a run killed early keeps no one), and who of them the last run
        # may have spared. A run that ends clean removes no one they name (docs/mirror.md: "After a
        # run that did not end clean"); the run after it does.
        self.kept: set[str] = set()
        self.spared: set[str] = set()
        # What the runs' quick clocks skipped, in this process and in those it starts: each run
        # stamps after every run before it, as it would in real time.
        self.skipped = skipped

    def data_file(self) -> tuple[Path, list[Record]]:
        """A new version of the data file: repeated ids, several records per person."""
        self.version += 1
        records = []
        for _ in range(self.rng.randint(1, 14)):
            record: Record = {"id": self.rng.choice(self.people)}
            for name in self.rng.sample(FIELDS, self.rng.randint(1, len(FIELDS))):
                record[name] = self.rng.choice(NUMBERS if name == "n" else VALUES)
            records.append(record)
            self.named.add(str(record["id"]))
        path = self.root / f"data-{self.version}.json"
        path.write_text(json.dumps(records))
        return path, records

    def fault(self) -> Fault:
        """One random misbehaviour, for one person or for every request, a few times."""
        rng = self.rng
        person = rng.choice([*self.people, None])
        times = rng.choice([1, 1, 2, 3, None])
        kinds = ["status", "status", "drop", "delay", "hints"] + (
            ["reject", "odd"] if self.transport == "batch" else []
        )
        kind = rng.choice(kinds)
        self.tally.faults += 1
        if kind == "status":
            status = rng.choice([500, 502, 503, 504, 429])
            if status == 429:
                # A workspace that refuses everything for its rate, for ever, is paced down to one
                # request a second: the run would be slow, not wrong.
                times = rng.choice([1, 2, 3])
            # A 5xx from a gateway may come while the write it passed on still lands, later.
            late = rng.choice([None, None, LATE]) if status != 429 else None
            return Fault(
                status=status, retry_after=rng.choice([None, "0", "0.05"]), apply_after=late, person=person, times=times
            )
        if kind == "hints":
            return Fault(hints=rng.randint(1, 3), person=person, times=times)
        if kind == "drop":
            return Fault(drop=rng.choice(list(Drop)), person=person, times=times)
        if kind == "delay":
            return Fault(delay=LATE, person=person, times=rng.choice([1, 2]))
        if kind == "reject":
            return Fault(reject=True, person=person or self.people[0], times=times)
        return Fault(odd_207=rng.choice(list(Odd207)), person=person, times=1)

    def run(self, data: Path, *, kill: signal.Signals | None = None) -> tuple[int | None, Path]:
        """One run of ``data``; with ``kill``, a separate process sent that signal at a random
        moment. Returns the exit code (None after SIGKILL) and the ``--failed`` path."""
        self.runs += 1
        self.tally.runs += 1
        failed = self.root / f"failed-{self.runs}.json"
        args = ["--config", str(self.config), "--data", str(data), "--failed", str(failed), "--quiet"]
        args += ["--retries", "2", "--timeout", str(TIMEOUT)]
        if self.state:
            args += ["--state", str(self.root / "state.db")]
        if kill is None and self.rng.random() < 0.25:
            code: int | None = self._in_process(data, failed)
        elif kill is None:
            code = run_cli(args).code
        else:
            code = self._killed(args, kill)
        self.settle()
        if code is not None:
            self.tally.exits[code] = self.tally.exits.get(code, 0) + 1
        self.spared = set(self.kept)
        if code == 0:
            self.kept.clear()
        elif data.exists():  # a --failed fed back that was never written: a run refused, keeping no one
            self.kept |= {str(r["id"]) for r in json.loads(data.read_text()) if isinstance(r, dict) and "id" in r}
        return code, failed

    def _killed(self, args: list[str], kill: signal.Signals) -> int | None:
        # Slow answers, so that the signal finds the run with requests in flight.
        self.emulator.latency = 0.02
        env = cli_env(child_env(self.skipped))
        proc = subprocess.Popen([*CLI, *args], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        goal = self.emulator.stats()["requests"] + self.rng.randint(1, 6)
        deadline = time.monotonic() + 20
        while proc.poll() is None and self.emulator.stats()["requests"] < goal and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rng.random() * 0.03)
        if proc.poll() is None:
            proc.send_signal(kill)
        _, stderr = proc.communicate(timeout=60)
        self.skipped.catch_up()
        self.emulator.latency = 0.0
        assert b"Traceback" not in stderr, stderr.decode()
        if kill is signal.SIGKILL and proc.returncode == -signal.SIGKILL:
            self.tally.killed += 1
            return None
        if kill is signal.SIGTERM and proc.returncode == 143:
            self.tally.terminated += 1
        return proc.returncode

    def _in_process(self, data: Path, failed: Path) -> int:
        """A run through the library, on a clock whose wall time may step back (up to a minute)
        after any outcome; its records not synced are written to ``failed`` as --failed would.

        Steps back only with ``--state``: without a ledger no run can know the stamps of the one
        before, and a clock set back between runs is a documented limit."""
        config = load_config(str(self.config))
        left: list[object] = []
        stop = Stop()
        clock = QuickClock(stop.event, self.skipped)
        steps = self.state and self.rng.random() < 0.5

        def outcome(o: RecordOutcome) -> None:
            if o.status not in (Status.SYNCED, Status.UNCHANGED):
                left.append(o.record)
            if steps and self.rng.random() < 0.3:
                clock.step_wall(-self.rng.uniform(0, 60))

        http = HttpSettings(read_timeout=TIMEOUT, retries=2, backoff_factor=0.0)
        ledger = Ledger(str(self.root / "state.db"), config) if self.state else None
        try:
            with open_data_file(str(data)) as source:
                result = sync(
                    config, source.records(), http=http, ledger=ledger, on_outcome=outcome, clock=clock, stop=stop
                )
        except CioSyncError as e:  # refused before anything was sent: the credentials check failed
            return int(e.exit_code)
        finally:
            if ledger is not None:
                ledger.close()
        if result.ok and (result.mirror is None or result.mirror.ok):
            return 0
        failed.write_text(json.dumps(left))
        return 1

    def settle(self) -> None:
        """Wait until nothing is in flight at the emulator: late writes have landed."""
        deadline = time.monotonic() + 30
        while self.emulator.stats()["in_flight"]:
            assert time.monotonic() < deadline, "the emulator never went quiet"
            time.sleep(0.005)

    def check(self, code: int | None, records: list[Record], when: str, failed: Path | None = None) -> None:
        strangers = set(self.emulator.people()) - self.named
        assert not strangers, f"seed {self.seed}: the workspace holds people no file named: {sorted(strangers)}"
        # A file with records that cannot be cast never ends in exit 0; --failed holds them.
        records = fixed(records)
        if code == 0:
            wrong = differences(self.emulator, records) + self.left_over(records)
            assert not wrong, f"seed {self.seed}: exit 0 {when}, yet the workspace differs: {wrong}"
        elif code in (1, 130, 143) and failed is not None and failed.exists():
            # Everyone --failed does not name was synced to the end of their records.
            listed = {str(r["id"]) for r in json.loads(failed.read_text()) if isinstance(r, dict) and "id" in r}
            done = {str(r["id"]) for r in records} - listed
            wrong = differences(self.emulator, records, only=done)
            assert not wrong, f"seed {self.seed}: exit {code} {when}, yet people it finished differ: {wrong}"

    def left_over(self, records: list[Record]) -> list[str]:
        """Mirroring: the people the workspace holds who left the file (deleted, suppressed) or
        still hold an attribute (cleared); none without mirroring."""
        if self.mirror is None:
            return []
        gone = set(self.emulator.people()) - set(expected(records)) - self.spared
        if self.mirror == "clear":
            return [f"{p}: not cleared: {self.emulator.people()[p]}" for p in sorted(gone) if self.emulator.people()[p]]
        return [f"{p}: left the file, still in the workspace" for p in sorted(gone)]

    def again(self, failed: Path, records: list[Record]) -> Path:
        """What the user runs next: ``--failed`` fixed; or, mirroring, the whole file fixed."""
        if self.mirror is None:
            return self.fix(failed)
        path = self.root / f"whole-{self.runs}.json"
        path.write_text(json.dumps(fixed(records)))
        return path

    def play(self) -> None:
        """The whole scenario: runs under faults, then the faults stop and it must converge."""
        rng = self.rng
        data, records = self.data_file()
        feed: Path | None = None
        for _ in range(rng.randint(1, 4)):
            for _ in range(rng.randint(0, 3)):
                self.emulator.add_fault(self.fault())
            if feed is None and rng.random() < 0.3:
                data, records = self.data_file()
            kill = rng.choice([None, None, signal.SIGKILL, signal.SIGTERM])
            code, failed = self.run(feed or data, kill=kill)
            whole = feed is None or self.mirror is not None
            self.check(code, records if whole else [], "under faults", failed if feed is None else None)
            feed = self.again(failed, records) if code in (1, 130, 143) and rng.random() < 0.6 else None
        self.emulator.faults.clear()
        # Once the faults stop: feed back what the last run left, until a run ends with exit 0.
        for _ in range(3):
            code, failed = self.run(feed or data)
            assert code in (0, 1), f"seed {self.seed}: exit {code} without faults"
            if code == 0:
                break
            feed = self.again(failed, records)
        assert code == 0, f"seed {self.seed}: no exit 0 three runs after the faults stopped"
        # What the user made of the file: its records, with those that could not be cast fixed.
        final = fixed(records)
        self.check(code, final, "after the faults stopped")
        # And the fixed file once more: with --state, the ledger must not skip anyone wrongly.
        again = self.root / "fixed.json"
        again.write_text(json.dumps(final))
        code, _ = self.run(again)
        assert code == 0
        self.check(code, final, "on the last run")
        self.tally.scenarios += 1

    def fix(self, failed: Path) -> Path:
        """``failed`` as the user feeds it back: its records that could not be cast, fixed."""
        if not failed.exists():
            return failed
        records = json.loads(failed.read_text())
        path = failed.with_name("fixed-" + failed.name)
        path.write_text(json.dumps(fixed(records)))
        return path


def play(seed: int, tally: Tally) -> None:
    """Play the scenario of ``seed`` against a fresh emulator in a temporary directory."""
    # An attribute sent as "" is removed, as the Track API does: a cleared person holds none.
    choices = Choices(empty_removes=True)
    with (
        tempfile.TemporaryDirectory(prefix="cio-sync-model-") as tmp,
        Emulator(SITE_ID, API_KEY, choices=choices) as emulator,
        pytest.MonkeyPatch.context() as patch,
    ):
        # Every run waits out no time: the command's here and in the processes started, and the
        # library's, all on quick clocks that share what they skip.
        skipped = Skipped(Path(tmp) / "skipped")
        quicken(patch.setattr, skipped)
        Scenario(seed, emulator, Path(tmp), tally, skipped).play()


def main() -> None:
    """``python -m tests.model``: scenarios from ``--seed`` on until ``--minutes`` have passed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    options = parser.parse_args()
    tally = Tally()
    deadline = time.monotonic() + options.minutes * 60
    seed = options.seed
    while time.monotonic() < deadline:
        try:
            play(seed, tally)
        except AssertionError as e:
            print(f"FAILED at seed {seed} after {tally.line()}\n{e}", file=sys.stderr)
            raise SystemExit(1) from None
        seed += 1
    print(f"model: seeds {options.seed} to {seed - 1}: {tally.line()}")


if __name__ == "__main__":
    main()
