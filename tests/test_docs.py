"""The documentation in step with the code: every option, key and exit code documented, examples that hold.

The checks read the code (the Typer app, the emulator's --help, the configuration schema, the
ExitCode enum), so an option or key added later without its documentation fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomllib
from typer.main import get_command

import cio_sync
from cio_sync.cli import app
from cio_sync.emulator import Emulator
from cio_sync.errors import ExitCode
from cio_sync.input.schema import load_schema, problems

from .conftest import API_KEY, SITE_ID, Files, run_cli, unstamped

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# The README gets a user from install to a first sync; the reference lives in docs/.
README_MAX_LINES = 250


def page(name: str) -> str:
    """One page of docs/."""
    return (DOCS / name).read_text(encoding="utf-8")


def all_docs() -> str:
    """Every page of docs/, joined."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md")))


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a ``## `` line), up to the next heading of that level."""
    return text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def fenced_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks in ``text``, in order."""
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def command_options(command: Any) -> Iterator[str]:
    """Every option name of a click command and, for a group, of each of its subcommands."""
    for param in command.params:
        yield from (name for name in [*param.opts, *param.secondary_opts] if name.startswith("-"))
    for sub in getattr(command, "commands", {}).values():
        yield from command_options(sub)


def test_every_cli_option_is_documented() -> None:
    options = set(command_options(get_command(app)))
    assert {"--config", "-config", "--data", "--failed", "--report", "--quiet", "-q"} <= options
    docs = all_docs()
    assert sorted(o for o in options if f"`{o}" not in docs) == []


def schema_keys(schema: dict[str, Any]) -> Iterator[str]:
    """Every property name in a JSON Schema, nested objects and array items included."""
    for key, sub in schema.get("properties", {}).items():
        yield key
        yield from schema_keys(sub)
    if isinstance(schema.get("items"), dict):
        yield from schema_keys(schema["items"])


def test_every_configuration_key_is_in_a_table_of_the_configuration_page() -> None:
    keys = set(schema_keys(load_schema("config.schema.json")))
    assert {"parallelism", "mappings", "from", "skipNull"} <= keys  # nested keys are found too
    configuration = page("configuration.md")
    assert sorted(k for k in keys if f"| `{k}` |" not in configuration) == []


def test_the_configuration_example_is_valid() -> None:
    example = json.loads(fenced_blocks(page("configuration.md"))[0])
    assert problems("config.schema.json", example) == []


def test_every_exit_code_is_in_the_table() -> None:
    table = section(page("command.md"), "## Exit codes")
    assert [code for code in ExitCode if f"\n| {int(code)} |" not in table] == []
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}, "the table names a code ExitCode lacks"


def emulator_help_options() -> set[str]:
    """The options ``cio-sync emulator serve --help`` lists (not those of its examples)."""
    shown = subprocess.run(
        [sys.executable, "-m", "cio_sync", "emulator", "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0, shown.stderr
    options: set[str] = set()
    for line in shown.stdout.splitlines():
        if line.lstrip().startswith("-"):
            # An option line: the names, then two spaces or more before the help text.
            names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
            options |= set(re.findall(r"--[a-z][a-z-]+", names))
    return options - {"--help"}


def test_every_emulator_option_is_on_the_emulator_page() -> None:
    options = emulator_help_options()
    assert len(options) > 10
    emulator = page("emulator.md")
    assert sorted(o for o in options if f"`{o}" not in emulator and f"{o}`" not in emulator) == []


def test_the_emulator_page_shows_its_subcommands() -> None:
    emulator = page("emulator.md")
    for command in ("cio-sync emulator serve", "cio-sync emulator show URL", "cio-sync emulator fault URL SPEC"):
        assert command in emulator


def test_the_worked_example_sends_what_it_says(emulator: Emulator, files: Files) -> None:
    data, config, sent = fenced_blocks(section(page("mappings.md"), "## A worked example"))
    document = {**json.loads(config), "siteId": SITE_ID, "apiKey": API_KEY, "baseUrl": emulator.url}
    run = run_cli(["--config", files.config(document), "--data", files.data(data)])
    assert run.code == 0, run.stderr
    expected = dict(re.findall(r"PUT /api/v1/customers/(\S+)\n(\{.*\})", sent))
    assert len(expected) == 2
    sent_bodies = {r.person_id: unstamped(r.body) for r in emulator.requests() if r.method == "PUT"}
    assert sent_bodies == {person: json.loads(body) for person, body in expected.items()}


def test_the_demo_ends_as_the_emulator_page_shows() -> None:
    examples = ROOT / "examples"
    config = json.loads((examples / "configuration.json").read_text())
    assert problems("config.schema.json", config) == []
    with Emulator() as emu:
        # The sync `make demo` runs, in-process.
        run = run_cli(
            [
                "--config",
                str(examples / "configuration.json"),
                "--data",
                str(examples / "data.json"),
                "--base-url",
                emu.url,
            ]
        )
        assert run.code == 1
        assert "8 records: 5 synced, 0 failed, 3 invalid" in run.stderr
        show = [sys.executable, "-m", "cio_sync.emulator", "show", emu.url]
        shown = subprocess.run(show, capture_output=True, text=True, timeout=30).stdout
    documented = page("emulator.md").split("as JSON, then its counters", 1)[1].split("```", 2)[1]
    # cio_ids are handed out as the requests arrive, in an order the workers decide.
    cio_id = re.compile(r"  \d{8}  ")
    assert cio_id.sub("  ########  ", shown).strip() == cio_id.sub("  ########  ", documented).strip()


def test_the_docker_one_liner_runs_as_the_host_user() -> None:
    one_liner = 'docker run --rm --user "$(id -u):$(id -g)" -e CIO_SITE_ID -e CIO_API_KEY -v "$PWD:/data" cio-sync'
    assert one_liner in README.read_text(encoding="utf-8")
    unattended = page("unattended.md")
    assert one_liner in unattended
    assert 'docker run --rm --network host --user "$(id -u):$(id -g)"' in unattended


def test_the_readme_is_short_and_names_the_two_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "make demo" in readme and "make test" in readme


def test_the_index_lists_every_page() -> None:
    index = page("index.md")
    pages = {path.name for path in DOCS.glob("*.md")} - {"index.md"}
    assert len(pages) >= 10
    assert sorted(name for name in pages if f"]({name})" not in index) == []


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    return {slug(heading) for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def relative_links(path: Path) -> Iterator[str]:
    """The targets of a Markdown file's links that point into the repository."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):
            yield target


def test_every_relative_link_points_at_an_existing_file_and_heading() -> None:
    sources = [README, ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    checked = 0
    for source in sources:
        for target in relative_links(source):
            checked += 1
            file_part, _, anchor = target.partition("#")
            linked = (source.parent / file_part).resolve() if file_part else source
            if not linked.exists():
                broken.append(f"{source.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{source.name}: {target} (no such heading)")
    assert checked > 20
    assert broken == []


def released_versions() -> list[str]:
    """The CHANGELOG's released versions, newest first."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.findall(r"^## \[(.+?)\]", changelog, re.MULTILINE)[0] == "Unreleased"
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)


def test_interim_answers_are_documented_as_the_code_reads_them() -> None:
    # transport/deadline.py's FinalResponse, behind both the Track and the App API, reads past
    # every interim answer with no count: the attempt's deadline is their only bound. A page that
    # gave a count promised a stop that never came (tests/test_verify_safety.py reads past 21).
    for name in ("verify.md", "retries.md"):
        text = " ".join(page(name).split())
        said = [part for part in re.split(r"(?<=\.) |\n", text) if "interim answers" in part.lower()]
        assert said, f"{name} does not say what becomes of interim answers"
        for sentence in said:
            assert "however many" in sentence, sentence
            assert not re.search(r"up to \d+", sentence), sentence


def test_the_newest_release_in_the_changelog_is_the_packages_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert released_versions()[0] == version
    # The package reads its version from the installed metadata, never from a copy of its own.
    assert cio_sync.__version__ == version
