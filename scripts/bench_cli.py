"""How fast the command line answers: each command run N times, each time in a fresh process.

    .venv/bin/python scripts/bench_cli.py [-n 7] [--compare-pythonpath /work/main]

Commands: ``--help``, ``--version``, ``keys create`` and ``users create`` on a temporary store
(created and migrated by a warm-up run that is not counted), and ``python -c pass`` as the
baseline (the interpreter's own start). Prints the median wall and CPU seconds (user + system,
of the child process) of each. With ``--compare-pythonpath DIR`` the same commands run with
``PYTHONPATH=DIR`` too (another checkout: e.g. the code before a change), side by side.

Bytecode: Python caches compiled modules; a machine that forbids it (PYTHONDONTWRITEBYTECODE)
compiles every module at every start, which costs more than most imports. The runs use a
private cache (PYTHONPYCACHEPREFIX, a temporary folder; warmed by the warm-up runs) as an
installed package would have; ``--no-bytecode-cache`` measures without one.
Targets (2 cores): ``--help`` < 0.5 s, ``keys create`` < 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough password\n"


def commands() -> dict[str, list[str]]:
    """Name -> arguments after ``python``; ``{n}`` in one is replaced by the run's number."""
    cli = ["-m", "reunite.cli"]
    return {
        "python -c pass": ["-c", "pass"],
        "reunite --help": [*cli, "--help"],
        "reunite --version": [*cli, "--version"],
        "reunite keys create": [*cli, "keys", "create", "--role", "admin"],
        "reunite users create": [
            *cli, "users", "create", "user{n}", "--role", "staff", "--password-stdin"
        ],
    }  # fmt: skip


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, exit code) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv],
        input=PASSWORD,
        capture_output=True,
        text=True,
        env=env,
        cwd=env["BENCH_CWD"],
    )
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall_s, cpu_s, done.returncode


def medians(pythonpath: Path, runs: int, scratch: Path, *, bytecode_cache: bool) -> dict[str, str]:
    """Command name -> 'wall s / CPU s' medians (and the exit code when it is not 0)."""
    env = dict(os.environ)
    env |= {
        "PYTHONPATH": str(pythonpath),
        "REUNITE_DATA_DIR": str(scratch / "data"),
        "REUNITE_INDEX_DIR": str(scratch / "index"),
        "BENCH_CWD": str(scratch),
    }
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    results = {}
    for name, argv in commands().items():
        walls, cpus, codes = [], [], set()
        for number in range(runs + 1):  # run 0 warms up: store created, bytecode cached
            wall_s, cpu_s, code = timed_run([a.format(n=number) for a in argv], env)
            codes.add(code)
            if number:
                walls.append(wall_s)
                cpus.append(cpu_s)
        shown = f"{statistics.median(walls):.2f} / {statistics.median(cpus):.2f}"
        results[name] = shown + ("" if codes == {0} else f" (exit {max(codes)})")
        print(f"  {pythonpath}: {name}: {results[name]}", file=sys.stderr, flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs per command")
    parser.add_argument(
        "--compare-pythonpath",
        type=Path,
        default=None,
        help="another checkout to time the same way (e.g. /work/main, the code before)",
    )
    parser.add_argument(
        "--no-bytecode-cache", action="store_true", help="time without a bytecode cache"
    )
    args = parser.parse_args()
    checkouts = {"this checkout": PROJECT_ROOT}
    if args.compare_pythonpath:
        checkouts = {"compared": args.compare_pythonpath.resolve(), **checkouts}
    table = {}
    for label, path in checkouts.items():
        with tempfile.TemporaryDirectory() as scratch:
            table[label] = medians(
                path, args.runs, Path(scratch), bytecode_cache=not args.no_bytecode_cache
            )
    cache = "no bytecode cache" if args.no_bytecode_cache else "bytecode cached"
    print(
        f"median of {args.runs} fresh processes, wall s / CPU s ({cache}, {os.cpu_count()} cores)"
    )
    header = "| command | " + " | ".join(f"{k} ({checkouts[k]})" for k in table) + " |"
    print(header)
    print("|---" * (len(table) + 1) + "|")
    for name in commands():
        print(f"| `{name}` | " + " | ".join(table[k][name] for k in table) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
