"""The ``cio-sync emulator`` command: serve, show what a running emulator holds, add faults.

``python -m cio_sync.emulator`` is the same command, for a checkout without the ``cio-sync``
script. It uses argparse rather than Typer so that every mistake on its command line, whatever
the installed Typer, ends in one line and exit status 2, and every failure in one line and status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .faults import Fault
from .rules import REGION_URLS, Choices
from .server import Emulator

PROG = "cio-sync emulator"
# The name errors are signed with: the command as it was started (set by main()).
_prog = PROG
# What a first word that is no subcommand means: serve, with those options (the older form).
SUBCOMMANDS = ("serve", "show", "fault", "faults")

EXAMPLES = """\
examples:
  cio-sync emulator serve --port 8080
  cio-sync emulator serve --port 8080 --fault status=429,retry-after=0.5,times=3 --fault drop=after,person=42
  cio-sync --config configuration.json --data data.json --base-url http://127.0.0.1:8080
  cio-sync emulator show http://127.0.0.1:8080
  cio-sync emulator fault http://127.0.0.1:8080 status=503,times=forever,endpoint=batch
"""

FAULT_KEYS = """\
fault keys (--fault and the fault command; exactly one action each):
  status=CODE        answer CODE instead of handling the request; with retry-after=TEXT (sent as
                     written: 2, 0.5, garbage) or retry-after-date=SECONDS (an HTTP date that far ahead);
                     with apply-after=SECONDS the write is applied that long after the answer all the same
  drop=before|after  close the connection without answering, before or after the write is applied
  delay=SECONDS      hold the request this long, then apply it and answer (a write later than a timeout)
  drip=SECONDS       answer one byte every SECONDS
  reject             refuse person=ID's item in batches (a 207 error)
  odd-207=no-index|string-index|not-json
                     answer a batch with a 207 of that shape, refusing person=ID's item (or the first)
  hints=N            handle the request, and send N informational 103 answers before the real one
scope and count:     person=ID  endpoint=customers|batch|region|app-people|app-person|any  times=N|forever (default 1)
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see --help)", 2)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one line on standard error and exit with ``code``."""
    print(f"{_prog}: {message}", file=sys.stderr)
    raise SystemExit(code)


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"--fault {text!r}: {e}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def _positive(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command's subcommands and their options."""
    parser = _Parser(
        prog=prog,
        description="A local stand-in for Customer.io's Track API on 127.0.0.1, to rehearse a sync against.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,show,fault}", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve until Ctrl-C",
        description="Serve a local stand-in for Customer.io's Track API on 127.0.0.1, until Ctrl-C.",
        epilog=FAULT_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _serve_options(serve)
    show = commands.add_parser("show", help="print what a running emulator holds, and its counters")
    show.add_argument("url", help="the emulator's base URL")
    fault = commands.add_parser(
        "fault",
        aliases=["faults"],
        help="add faults to a running emulator",
        epilog=FAULT_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fault.add_argument("url", help="the emulator's base URL")
    fault.add_argument("faults", type=_fault, nargs="+", metavar="SPEC", help="faults, as for --fault")
    return parser


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1; 0 (default) picks a free one")
    parser.add_argument("--port-file", type=Path, metavar="PATH", help="write the port here once listening")
    parser.add_argument("--site-id", default="demo-site", help="the site id it accepts (default demo-site)")
    parser.add_argument("--api-key", default="demo-key", help="the API key it accepts (default demo-key)")
    parser.add_argument("--region", choices=sorted(REGION_URLS), default="us", help="the workspace's region")
    parser.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="answer each request no sooner than this after it arrived",
    )
    parser.add_argument("--rate-limit", type=_positive, metavar="PER_SECOND", help="answer 429 above this rate")
    parser.add_argument("--burst", type=_positive, metavar="N", help="requests allowed at once above the rate")
    _add_app_options(parser)
    parser.add_argument(
        "--fault", type=_fault, action="append", default=[], metavar="SPEC", help="a fault (below); repeatable"
    )
    parser.add_argument(
        "--email-identifier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the workspace identifies people by email too (default: yes)",
    )
    parser.add_argument("--null-removes", action="store_true", help="null removes an attribute (default: stored)")
    parser.add_argument("--empty-removes", action="store_true", help='"" removes an attribute (default: stored)')
    parser.add_argument(
        "--spec-values",
        action="store_true",
        help="refuse v1 values the spec does not list (floats, null, arrays, objects) with 400",
    )
    parser.add_argument(
        "--people",
        type=Path,
        metavar="PATH",
        help='start with these people: a JSON array of {"id", "email", "cio_id", "attributes"}',
    )


def _add_app_options(parser: argparse.ArgumentParser) -> None:
    """The App API's options (the read side, for ``cio-sync verify``)."""
    parser.add_argument(
        "--app-api-key",
        default="demo-app-key",
        help="the App API key it accepts, as a bearer token (default demo-app-key)",
    )
    parser.add_argument(
        "--app-rate-limit",
        type=_positive,
        default=10.0,
        metavar="PER_SECOND",
        help="the App API answers 429 above this rate (default 10, as documented)",
    )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> None:
    """Entry point for ``cio-sync emulator`` (and ``python -m cio_sync.emulator``, named by ``prog``).

    A command line that starts with no subcommand serves (``--port 8080`` is ``serve --port 8080``),
    as the command did before it had subcommands.
    """
    global _prog  # one process runs one command, under one name
    _prog = prog
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0] not in SUBCOMMANDS and words[0] not in ("-h", "--help")):
        words.insert(0, "serve")
    args = build_parser(prog).parse_args(words)
    try:
        if args.command == "show":
            show(args.url)
        elif args.command in ("fault", "faults"):
            _admin(args.url, "/_emulator/faults", [f.to_json() for f in args.faults])
        else:
            serve(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # Whoever read standard output stopped reading (`show | head`): nothing more can be said
        # there, and Python must not try again when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def serve(args: argparse.Namespace) -> None:
    """Start the emulator the options describe and serve until interrupted."""
    choices = Choices(
        email_identifier=args.email_identifier,
        null_removes=args.null_removes,
        empty_removes=args.empty_removes,
        spec_values=args.spec_values,
    )
    try:
        emulator = Emulator(
            args.site_id,
            args.api_key,
            region=args.region,
            choices=choices,
            latency=args.latency,
            rate_limit=args.rate_limit,
            burst=args.burst,
            faults=args.fault,
            port=args.port,
            keep_requests=False,
            app_api_key=args.app_api_key,
            app_rate_limit=args.app_rate_limit,
        )
    except OSError as e:
        fail(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}")
    if args.people is not None:
        _seed(emulator, args.people)
    if args.port_file is not None:
        try:
            args.port_file.write_text(emulator.url.rsplit(":", 1)[1])
        except OSError as e:
            fail(f"cannot write --port-file {args.port_file}: {e.strerror or e}")
    print(f"Track API emulator listening on {emulator.url}", file=sys.stderr, flush=True)
    emulator.serve_forever()


def _seed(emulator: Emulator, path: Path) -> None:
    try:
        people = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"--people {path}: {getattr(e, 'strerror', None) or e}", 2)
    if not isinstance(people, list):
        fail(f"--people {path}: must be a JSON array of people", 2)
    for n, person in enumerate(people):
        try:
            if not isinstance(person, dict) or set(person) - {"id", "email", "cio_id", "attributes"}:
                raise ValueError('each person is an object with "id", "email", "cio_id" and "attributes" only')
            named = {k: v for k, v in person.items() if k != "attributes" and v is not None}
            if not all(isinstance(v, str) for v in named.values()):
                # The workspace holds identifiers as text: 7 would not be the person a write to 7 names.
                raise ValueError('"id", "email" and "cio_id" are strings (write 7 as "7")')
            if not isinstance(person.get("attributes") or {}, dict):
                raise ValueError('"attributes" is an object')
            emulator.add_person(**person)
        except (TypeError, ValueError) as e:
            fail(f"--people {path}: person {n}: {e}", 2)


def show(url: str) -> None:
    """Print every person a running emulator holds as an aligned table, then its counters."""
    people = _admin(url, "/_emulator/people")
    stats = _admin(url, "/_emulator/stats")
    for line in render_people(people):
        print(line)
    print(summary(len(people), stats))


def render_people(people: list[dict[str, Any]]) -> Iterator[str]:
    """An aligned table: id, email, cio_id, then the attributes as JSON; nothing for no people."""
    if not people:
        return
    header = ("id", "email", "cio_id", "attributes")
    rows = [
        (p["id"] or "", p["email"] or "", p["cio_id"], json.dumps(p["attributes"], ensure_ascii=False, sort_keys=True))
        for p in sorted(people, key=lambda p: (p["id"] or p["email"] or "", p["cio_id"]))
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3]


def summary(people: int, stats: dict[str, Any]) -> str:
    """``3 people; 8 API requests: 7 answered 200, 1 answered 401, 1 dropped``, in the right numbers."""
    line = f"{people} {'person' if people == 1 else 'people'}; {_count(stats['requests'], 'API request')}"
    parts = [f"{count} answered {status}" for status, count in stats["statuses"].items()]
    if stats.get("dropped"):
        parts.append(f"{stats['dropped']} dropped")
    blocked = stats.get("suppressed") or []
    held = f"; suppressed: {', '.join(blocked)}" if blocked else ""
    return line + (": " + ", ".join(parts) if parts else "") + held


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _admin(url: str, path: str, body: Any = None) -> Any:
    """GET (or POST ``body`` to) one of a running emulator's admin paths; one line and exit 1 on failure."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        fail(f"{url!r} is not an http:// URL", 2)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="GET" if data is None else "POST")  # noqa: S310 -- http(s) checked above
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 -- http(s) checked above
            return json.loads(answer.read())
    except urllib.error.HTTPError as e:
        fail(f"{base}{path} answered {e.code}: {e.read().decode('utf-8', 'replace')[:200]}")
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        fail(f"cannot reach an emulator at {base}: {getattr(reason, 'strerror', None) or reason}")
    except ValueError:
        fail(f"{base} did not answer as the emulator does: is it one?")
