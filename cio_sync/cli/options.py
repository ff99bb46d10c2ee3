"""What the commands of the family share: their Typer settings, the inputs' options, the data
file's layout, and a check that a number is one."""

from __future__ import annotations

import math
from enum import Enum
from typing import Annotated

import typer


class DataFormat(str, Enum):
    """How the data file is laid out."""

    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def finite(value: float | None) -> float | None:
    """``value``, refused when it is NaN."""
    # Not every click's FloatRange refuses nan, which compares false with both of its bounds.
    if value is not None and math.isnan(value):
        raise typer.BadParameter("nan is not a number")
    return value


ConfigOption = Annotated[
    str, typer.Option("--config", "-config", metavar="PATH", help="The configuration file (JSON).")
]
DataOption = Annotated[
    str, typer.Option("--data", "-data", metavar="PATH", help="The data file; - reads standard input.")
]
FormatOption = Annotated[
    DataFormat | None,
    typer.Option(
        "--format",
        help=(
            "json: one array of objects; ndjson: one object per line; csv: a header row, then a row per "
            "record. Default: by suffix (.ndjson/.jsonl, .csv), else json."
        ),
    ),
]


def command_app() -> typer.Typer:
    """A Typer app for one command of the family, all set alike."""
    return typer.Typer(
        add_completion=False,
        # Tracebacks with local variables could show a key.
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
