"""``cio-sync init``: a first configuration for a data file, on standard output."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated

import typer

from ..errors import CioSyncError, ExitCode
from ..input.config import MAX_ATTRIBUTES
from ..input.datafile import CSV, NDJSON
from ..input.mapping import MAX_VALUE_BYTES, describe_path
from ..input.propose import NothingToMap, Proposal, propose
from ..input.sample import DEFAULT_SAMPLE, MAX_SAMPLE_BYTES, Sample
from ..outputs.terminal import json_line, one_line
from .options import DataOption, FormatOption, command_app

EXAMPLES = """\
Examples:

\b
  cio-sync init --data people.csv > configuration.json
  cio-sync init --data export.ndjson --sample 10000 > configuration.json
  CIO_SITE_ID=... CIO_API_KEY=... cio-sync --config configuration.json --data people.csv --dry-run

The configuration goes to standard output, what was picked and what to check to standard
error. Exit codes: 0 proposed; 2 nothing proposed (the data file is missing, empty or unreadable).
"""
# How many casts the summary line names before it says "and N more".
_CASTS_SHOWN = 4


def init_command(
    data: DataOption,
    data_format: FormatOption = None,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            min=1,
            metavar="N",
            help=f"Read at most this many records (default {DEFAULT_SAMPLE:,}); keys first seen later are missed.",
        ),
    ] = DEFAULT_SAMPLE,
) -> None:
    """Propose a configuration for a data file: every column or key mapped, userId picked, casts
    where every sampled value agrees. Credentials are left out: they come from CIO_SITE_ID and
    CIO_API_KEY."""
    raise typer.Exit(run_init(data, data_format.value if data_format else None, sample))


def run_init(path: str, format: str | None = None, limit: int = DEFAULT_SAMPLE) -> int:  # noqa: A002 - the keyword is named for the --format option
    """Sample the data file at ``path``, print the proposed configuration on standard output and
    what to check on standard error; return the exit code. Nothing reaches standard output
    unless the whole configuration does."""
    try:
        with Sample(path, format, limit) as sample:
            try:
                proposal = propose(sample.records(), sample.header)
            except NothingToMap:
                raise CioSyncError(_nothing(sample)) from None
            notes = summary(proposal, sample)
    except CioSyncError as e:
        _say(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted: nothing was written")
        return ExitCode.INTERRUPTED
    except Exception as e:  # a bug: one line, not a traceback
        _say(f"internal error: {type(e).__name__}: {e} (please report this)")
        return ExitCode.INTERNAL_ERROR
    if sys.stdout is None:  # typer.echo would write nothing, and say nothing of it
        _say("error: cannot write the configuration to standard output: it is closed")
        return ExitCode.OUTPUT_FAILED
    try:
        typer.echo(render(proposal.config).encode("utf-8"), nl=False)
    except OSError as e:
        _say(f"error: cannot write the configuration to standard output: {e.strerror}")
        return ExitCode.OUTPUT_FAILED
    for note in notes:
        _say(note)
    return ExitCode.OK


def _nothing(sample: Sample) -> str:
    if sample.read == 0 and sample.unreadable:
        return f"{sample.name}: {_unreadable(sample)}, and no other record was read: there is nothing to propose from"
    if sample.read == 0 and sample.cut:
        read = f"{MAX_SAMPLE_BYTES >> 20} MiB"
        return (
            f"{sample.name}: no record ends within the first {read}, which is all init reads: nothing to propose from"
        )
    if sample.read == 0:
        return f"{sample.name}: holds no records, so there is nothing to propose from"
    records = "the one record" if sample.read == 1 else f"none of the first {sample.read:,} records"
    return f"{sample.name}: {records} holds a key to map"


def render(config: dict[str, object]) -> str:
    """``config`` as JSON text, one mapping a line; characters that could mislead a terminal escaped."""
    lines = []
    for key, value in config.items():
        if key == "mappings" and isinstance(value, list) and value:
            items = ",\n".join(f"    {_json(m)}" for m in value)
            lines.append(f'  "mappings": [\n{items}\n  ]')
        else:
            lines.append(f"  {_json(key)}: {_json(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _json(value: object) -> str:
    return json_line(json.dumps(value, ensure_ascii=False))


def summary(proposal: Proposal, sample: Sample) -> list[str]:
    """What was picked and what to check, for standard error: two lines, and one for each problem seen."""
    config = proposal.config
    mappings = config["mappings"]
    unit = "row" if sample.format == CSV else "record"
    read = f"{sample.read:,} {unit}" + ("" if sample.read == 1 else "s")
    scope = "the whole file" if sample.reached_end else "the file goes on"
    if proposal.records == 0:
        read, scope = "the header", "no rows, so no casts"
    others = ", ".join(_path(p) for p in proposal.other_ids)
    picked = f"userId {_path(proposal.user_id)}" + (f" (also id-like: {others})" if others else "")
    if config.get("idType"):
        picked += f', idType "{config["idType"]}"'
    lines = [f"proposed {len(mappings)} mappings from {read} of {sample.name} ({scope}); {picked}; {_casts(proposal)}"]
    check = 'check userId and each "as", then rehearse with --dry-run'
    if not sample.reached_end:
        verb = "was" if sample.read == 1 else "were"
        check += f"; only the first {read} {verb} read: a key first seen after them is not mapped (--sample reads more)"
    lines.append(check + "; credentials come from CIO_SITE_ID and CIO_API_KEY")
    return lines + _problems(proposal, sample)


def _path(path: tuple[str, ...]) -> str:
    """A key or path as the configuration writes it: ``"id"``, ``["user", "id"]``."""
    return describe_path(path[0] if len(path) == 1 and path[0] else path)


def _casts(proposal: Proposal) -> str:
    if not proposal.casts:
        return "no casts"
    shown = [f'"{to}" as {cast.value}' for to, cast in proposal.casts[:_CASTS_SHOWN]]
    more = len(proposal.casts) - len(shown)
    return "casts: " + ", ".join(shown) + (f" and {more} more" if more else "")


def _problems(proposal: Proposal, sample: Sample) -> list[str]:
    """A line for each thing the user must fix or know before a sync."""
    found = []
    where = _path(proposal.user_id)
    invalid = "a sync reports them as invalid"
    if not proposal.id_named:
        found.append(
            f"no key is named like a person id (id, user_id, customer_id, email...): userId is {where}, "
            "the first with an id in every record; set the right one"
        )
    if proposal.id_missing and proposal.records:
        have = _some(proposal.id_missing, "sampled record has", "sampled records have")
        found.append(f"{have} no usable id at {where} (of {proposal.records:,}): {invalid}")
    if proposal.over_limit:
        keys = _some(len(proposal.over_limit), "key is", "keys are")
        first = _path(proposal.over_limit[0])
        found.append(f"{keys} not mapped, from {first} on: a configuration holds at most {MAX_ATTRIBUTES} mappings")
    if proposal.oversize:
        named = [_path(p) for p in proposal.oversize]
        keys = ", ".join(named[:_CASTS_SHOWN]) + (
            f" and {len(named) - _CASTS_SHOWN} more" if named[_CASTS_SHOWN:] else ""
        )
        hold = "holds" if len(named) == 1 else "hold"
        found.append(
            f"{keys} {hold} values over {MAX_VALUE_BYTES:,} bytes in the sample, which the Track API refuses: "
            "a sync reports those records as invalid; leave these out or shorten them"
        )
    if proposal.unusable:
        keys = _some(len(proposal.unusable), "key is", "keys are")
        found.append(f"{keys} not Unicode text (a lone surrogate escape): not mapped")
    if proposal.not_objects:
        found.append(
            _some(proposal.not_objects, "sampled record is not an object", "sampled records are not objects")
            + f": {invalid}"
        )
    if sample.ragged:
        rows = _some(sample.ragged, "sampled row has", "sampled rows have")
        found.append(f"{rows} more or fewer cells than the header: {invalid}")
    if sample.unreadable:
        them = "it" if sample.unreadable == 1 else "them"
        found.append(f"{_unreadable(sample)}: a sync reports {them} as invalid; nothing was proposed from {them}")
    return found


def _unreadable(sample: Sample) -> str:
    """How many records (NDJSON lines) the sample could not read, and why the first could not be."""
    lines = (
        _some(sample.unreadable, "line", "lines")
        if sample.format == NDJSON
        else _some(sample.unreadable, "record", "records")
    )
    first = ""
    if sample.first_unreadable is not None:
        index, problem = sample.first_unreadable
        first = (
            f" (record {index:,}: {problem})"
            if sample.unreadable == 1
            else f" (the first, record {index:,}: {problem})"
        )
    return f"{lines} could not be read{first}"


def _some(count: int, one: str, many: str) -> str:
    """``count`` and the words for it: "1 key is", "2 keys are"."""
    return f"{count:,} {one if count == 1 else many}"


def _say(message: str) -> None:
    # Keys and file names reach this line: none may drive the terminal. A standard error that
    # cannot be written (a full disk) loses the line, and the exit code still says how it went.
    with contextlib.suppress(OSError):
        typer.echo(f"cio-sync: {one_line(message)}", err=True)


app = command_app()
app.command("init", epilog=EXAMPLES)(init_command)
