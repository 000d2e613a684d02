"""Start-up cost of the CLI: `yolotal --help` against a bare `python -c pass` (goal: within 0.25 s).

    python benchmarks/bench_startup.py [--runs 15]

Runs each command --runs times in fresh processes and compares medians. `yolotal --help` must not import
torch (the commands import it lazily), which is what keeps this small.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

GOAL_S = 0.25


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs + 1):  # the first run fills the file cache and is not counted
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    exe = shutil.which("yolotal")
    cli = [exe, "--help"] if exe else [sys.executable, "-m", "yolotal", "--help"]
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    help_ = median_seconds(cli, args.runs)
    delta = help_ - bare
    print(f"python -c pass : {bare * 1000:7.1f} ms")
    print(f"{' '.join(['yolotal', '--help']):15}: {help_ * 1000:7.1f} ms")
    print(f"difference     : {delta * 1000:7.1f} ms (goal ≤ {GOAL_S * 1000:.0f} ms){'' if delta <= GOAL_S else ' MISSED'}")


if __name__ == "__main__":
    main()
