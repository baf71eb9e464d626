"""`prunepeft bench --config benchmarks/NAME.yaml`: runs a grid's unfinished runs as child processes, then writes
its table and plots (see ``bench.grid`` for the config keys).

Each finished run's results.json is copied to benchmarks/results/NAME/runs/, and a run whose copy exists there
is not run again: a committed benchmark resumes on any machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prunepeft.bench.grid import Grid, done
from prunepeft.common.config import ConfigError, load_yaml, require


def _execute(run: dict, threads: int) -> str | None:
    """One run in a child process; returns an error text, or None when it finished."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "prunepeft", *run["args"]], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return f"{run['dir']} (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    with open(os.path.join(run["dir"], "results.json"), encoding="utf-8") as fh:
        results = json.load(fh)
    results["bench"] = {**{k: run[k] for k in ("task", "method", "lr", "seed", "args")}, "threads": threads,
                        "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip
    os.makedirs(os.path.dirname(run["copy"]), exist_ok=True)
    with open(run["copy"] + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    os.replace(run["copy"] + ".tmp", run["copy"])
    return None


def usable_cores() -> int:
    """The cores this process may run on (``taskset -c 1 prunepeft bench ...`` gives it one), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def _run_all(runs: list[dict], jobs: int, after=None) -> list[str]:
    """Runs the unfinished runs, ``jobs`` at a time; ``after()`` follows each finished run (one at a time)."""
    todo = [r for r in runs if not done(r)]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs done earlier; {len(todo)} to run, {jobs} at a time", flush=True)
    threads = max(1, usable_cores() // jobs)

    def one(item):
        i, run = item
        print(f"[{i}/{len(todo)}] start {run['dir']}: prunepeft {' '.join(run['args'])}", flush=True)
        error = _execute(run, threads)
        print(f"[{i}/{len(todo)}] {'FAILED' if error else 'done'} {run['dir']}", flush=True)
        if after and not error:
            with lock:
                after()
        return error

    lock = threading.Lock()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return [e for e in pool.map(one, enumerate(todo, 1)) if e]


def run_grid(config_path: str, jobs: int | None = None) -> str:
    config = load_yaml(config_path)
    name = config.get("name") or os.path.splitext(os.path.basename(config_path))[0]
    grid = Grid(config, name, config.get("output", os.path.join("benchmarks", "runs", name)),
                os.path.join("benchmarks", "results", name))  # fmt: skip
    jobs = jobs or int(config.get("jobs", 1))
    require(jobs >= 1, f"--jobs must be at least 1, got {jobs}.")
    from prunepeft.bench.table import write_references, write_table

    errors = _run_all(grid.first_stage(), jobs, after=lambda: write_table(grid))
    errors += _run_all(grid.second_stage(), jobs, after=lambda: write_table(grid))
    path = write_table(grid)
    write_references(grid)
    if errors:
        raise ConfigError(f"{len(errors)} run(s) failed (finished runs are kept; rerun to resume):\n" + errors[0])
    return path
