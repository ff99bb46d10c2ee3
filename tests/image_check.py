"""The check behind ``make image-check``: build the Dockerfile with podman and run the image for real.

Not part of the suite (it needs podman and minutes). Against the emulator on this machine's
loopback (the container shares the host's network), it checks what the Dockerfile promises:

- the build context holds only what the Dockerfile copies (no .venv, .git, caches, no
  configuration file with an apiKey);
- the documented ``docker run`` (docs/unattended.md), with ``--user "$(id -u):$(id -g)"`` for a
  host user who is not root, syncs, and the files it writes into the mounted directory belong to
  that user and are readable (0644 under the engine's default umask 022);
- the engine's stop (SIGTERM to cio-sync, PID 1) ends the run with exit 143, the message names
  SIGTERM, and --report and --failed account for every record.

    python -m tests.image_check     # PODMAN="podman --storage-driver vfs" by default
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cio_sync.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/cio-sync-image-check"
SITE_ID, API_KEY = "image-check-site", "image-check-key-5f2a"
# A host user who is not root and has no name: the container must not need one either.
HOST_UID = 54321
# vfs and chroot isolation run inside an unprivileged sandbox (no overlayfs, no nested
# namespaces); slower than the defaults, but they work wherever podman does.
PODMAN = shlex.split(os.environ.get("PODMAN", "podman --storage-driver vfs"))
BUILD_FLAGS = ["--network", "host", "--isolation", "chroot"]
# The machine's package index settings and certificate authorities, for pip inside the build.
BUILD_MOUNTS = [f"{p}:{p}:ro" for p in ("/etc/ssl/certs", "/etc/pip.conf") if Path(p).exists()]


class CheckFailed(Exception):
    """One of the image's promises does not hold."""


def say(message: str) -> None:
    print(f"image-check: {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


def build(tag: str, containerfile: Path, context: Path) -> float:
    started = time.monotonic()
    mounts = [arg for mount in BUILD_MOUNTS for arg in ("-v", mount)]
    done = podman("build", *BUILD_FLAGS, *mounts, "-f", str(containerfile), "-t", tag, str(context))
    check(done.returncode == 0, f"podman build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.monotonic() - started


def base_image() -> str:
    """The final stage's base, as the Dockerfile names it."""
    froms = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    return froms[-1]


def repair_base() -> None:
    """Give a local base image whose ``/`` only root may enter one that every user can, as published
    images have.

    A base made from a ``mktemp -d`` directory keeps its 0700: then no user but root reaches
    anything, and the image's non-root user fails before cio-sync starts. Re-importing the base's
    files (which hold no entry for ``/`` itself) gives ``/`` the engine's default mode.
    """
    base = base_image()
    mode = root_mode(base)
    if mode & 0o005 == 0o005:
        return
    created = podman("create", base, "true")
    check(created.returncode == 0, f"cannot open {base}: {created.stderr}")
    container = created.stdout.strip()
    try:
        export = subprocess.Popen([*PODMAN, "export", container], stdout=subprocess.PIPE)
        imported = subprocess.run([*PODMAN, "import", "-", base], stdin=export.stdout, capture_output=True, text=True)
        export.wait()
    finally:
        podman("rm", container)
    check(imported.returncode == 0 and export.returncode == 0, f"cannot re-import {base}: {imported.stderr}")
    check(root_mode(base) & 0o005 == 0o005, f"{base} still has / at {root_mode(base):o}")
    say(f"{base} here had / at {mode:o}, closed to every user but root, unlike published images: re-imported")


def root_mode(image: str) -> int:
    """The permission bits of ``/`` in ``image``."""
    found = podman("run", "--rm", "--user", "0", "--entrypoint", "/usr/bin/stat", image, "-c", "%a", "/")
    check(found.returncode == 0, f"cannot look into {image}: {found.stderr}")
    return int(found.stdout.strip(), 8)


def check_context() -> None:
    """What the build context holds once .dockerignore has had its say, with a decoy config present."""
    decoy = ROOT / f"configuration.image-check-{uuid.uuid4().hex[:8]}.json"
    decoy.write_text(json.dumps({"siteId": SITE_ID, "apiKey": API_KEY}))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            listing = Path(scratch) / "Containerfile"
            listing.write_text(f"FROM {IMAGE}\nCOPY . /context\n")
            build(f"{IMAGE}-context", listing, ROOT)
    finally:
        decoy.unlink()
    walk = "import os\nfor d, _, names in os.walk('/context'):\n    for n in names: print(os.path.join(d, n))"
    found = podman("run", "--rm", "--entrypoint", "/opt/cio-sync/bin/python", f"{IMAGE}-context", "-c", walk)
    podman("rmi", f"{IMAGE}-context")
    check(found.returncode == 0, found.stderr)
    files = sorted(line.removeprefix("/context/") for line in found.stdout.splitlines())
    tops = sorted({name.split("/")[0] for name in files})
    check(tops == ["README.md", "cio_sync", "pyproject.toml", "schemas"], f"the build context holds {tops}")
    check(not any("__pycache__" in name for name in files), "the build context holds __pycache__")
    say(f"build context: {len(files)} files, only {', '.join(tops)}")


def run_args(directory: Path, url: str, *extra: str) -> list[str]:
    """The documented ``docker run``, on the host's network so the container reaches the emulator."""
    return [
        "run",
        "--network",
        "host",
        "--user",
        f"{HOST_UID}:{HOST_UID}",
        "-e",
        "CIO_SITE_ID",
        "-e",
        "CIO_API_KEY",
        "-v",
        f"{directory}:/data",
        *extra,
        IMAGE,
        "--config",
        "/data/configuration.json",
        "--data",
        "/data/data.json",
        "--failed",
        "/data/retry.json",
        "--report",
        "/data/report.json",
        "--base-url",
        url,
    ]


def host_dir(parent: str, config: dict[str, Any], data: Sequence[Any]) -> Path:
    # The user must reach the directory too: a temporary directory is made for root alone.
    Path(parent).chmod(0o755)
    directory = Path(parent) / "data"
    directory.mkdir()
    (directory / "configuration.json").write_text(json.dumps(config))
    (directory / "data.json").write_text(json.dumps(data))
    for path in (directory, *directory.iterdir()):
        os.chown(path, HOST_UID, HOST_UID)
    return directory


def readable_by_host_user(path: Path) -> bool:
    as_user = ["setpriv", f"--reuid={HOST_UID}", f"--regid={HOST_UID}", "--clear-groups", "cat", str(path)]
    return subprocess.run(as_user, capture_output=True).returncode == 0


def check_outputs(directory: Path) -> dict[str, Any]:
    for name in ("retry.json", "report.json"):
        stat = (directory / name).stat()
        check(
            (stat.st_uid, stat.st_mode & 0o777) == (HOST_UID, 0o644),
            f"{name}: uid {stat.st_uid} mode {stat.st_mode & 0o777:o}, not uid {HOST_UID} mode 644",
        )
        check(readable_by_host_user(directory / name), f"{name} is not readable by uid {HOST_UID}")
    check(not [p.name for p in directory.glob(".*.tmp")], "temporary files left behind")
    report: dict[str, Any] = json.loads((directory / "report.json").read_text())
    return report


def check_sync(env: dict[str, str]) -> None:
    """The example data synced by a host user who is not root; files theirs and readable."""
    config = json.loads((ROOT / "examples" / "configuration.json").read_text())
    config.pop("apiKey"), config.pop("siteId")
    data = json.loads((ROOT / "examples" / "data.json").read_text())
    with Emulator(SITE_ID, API_KEY) as emu, tempfile.TemporaryDirectory() as parent:
        directory = host_dir(parent, config, data)
        done = subprocess.run([*PODMAN, *run_args(directory, emu.url, "--rm")], capture_output=True, text=True, env=env)
        check(done.returncode == 1, f"exit {done.returncode}, not 1 (three invalid records):\n{done.stderr}")
        check(API_KEY not in done.stdout + done.stderr, "the API key was printed")
        people = emu.people()
        check(len(people) == 4 and people["1"]["plan"] == "enterprise", f"the workspace holds {people}")
        report = check_outputs(directory)
        check(report["exit_code"] == 1, f"report: {report}")
        check(len(json.loads((directory / "retry.json").read_text())) == 3, "--failed must hold the 3 invalid records")
    say(f"docker run --user {HOST_UID}:{HOST_UID}: exit 1, 4 people synced, --failed/--report 0644 and theirs")


def check_stop(env: dict[str, str]) -> None:
    """``podman stop`` mid-run: SIGTERM to cio-sync, exit 143, every record accounted for."""
    total = 3000
    config = {"parallelism": 4, "userId": "id", "mappings": [{"from": "name", "to": "name"}]}
    data = [{"id": i, "name": f"person {i}"} for i in range(total)]
    name = f"cio-sync-image-check-{uuid.uuid4().hex[:8]}"
    with Emulator(SITE_ID, API_KEY, latency=0.05) as emu, tempfile.TemporaryDirectory() as parent:
        directory = host_dir(parent, config, data)
        proc = subprocess.Popen(
            [*PODMAN, *run_args(directory, emu.url, "--name", name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while len(emu.people()) < 40 and proc.poll() is None and time.monotonic() < deadline:
                threading.Event().wait(0.05)
            check(proc.poll() is None, "the run ended before it could be stopped")
            asked = time.monotonic()
            stopped = podman("stop", "-t", "10", name, timeout=60)
            took = time.monotonic() - asked
            check(stopped.returncode == 0, stopped.stderr)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            podman("rm", "-f", name)
        check(proc.returncode == 143, f"exit {proc.returncode}, not 143:\n{stderr}")
        check("SIGTERM received" in stderr and "Ctrl-C" not in stderr, f"the stop message:\n{stderr}")
        report = check_outputs(directory)
        failed = json.loads((directory / "retry.json").read_text())
        synced = len(emu.people())
        counts = report["counts"]
        check(report["stopped"] == "terminated", f"report: stopped {report.get('stopped')}")
        check(counts["synced"] == synced, f"report says {counts['synced']} synced, the workspace holds {synced}")
        check(
            counts["synced"] + counts.get("not_attempted", 0) == total == synced + len(failed),
            f"{counts} and {len(failed)} in --failed do not add up to {total}",
        )
    say(f"podman stop: exit 143 after {took:.2f} s; {synced} synced + {len(failed)} in --failed = {total}")


def main() -> int:
    """Run every check; 0 when all hold."""
    try:
        version = podman("--version", timeout=60)
    except FileNotFoundError:
        version = None
    if version is None or version.returncode != 0:
        say(f"{shlex.join(PODMAN)} is not usable here: nothing checked")
        return 1
    env = {**os.environ, "CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY}
    try:
        repair_base()
        seconds = build(IMAGE, ROOT / "Dockerfile", ROOT)
        say(f"built the Dockerfile in {seconds:.0f} s ({version.stdout.strip()})")
        check_context()
        check_sync(env)
        check_stop(env)
    except (CheckFailed, subprocess.TimeoutExpired) as e:
        say(f"FAILED: {e}")
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
