"""Run the benchmarks (all, or those named) and write hls_projects/bench.json."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from flow.log import quiet_tensorflow
from flow.project import PROJECTS_DIR, write_json

# name -> module with a `run() -> dict` function
BENCHES = {
    "fixed": "benchmarks.bench_fixed",
    "data": "benchmarks.bench_data",
    "reference": "benchmarks.bench_reference",
    "sim": "benchmarks.bench_sim",
    "cost": "benchmarks.bench_cost",
    "area": "benchmarks.bench_area",
    "warm": "benchmarks.bench_warm",
}


def main(argv: list[str] | None = None) -> int:
    """Run and print each benchmark's figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHES, []], help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    quiet_tensorflow()
    results = {}
    for name in args.names or BENCHES:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(BENCHES[name])
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc.name})", flush=True)
            continue
        print(f"== {name}", flush=True)
        figures = module.run()
        figures["bench_seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = figures
        print(json.dumps(figures, indent=2, default=str), flush=True)
    write_json(PROJECTS_DIR / "bench.json", results)
    print(f"written: {PROJECTS_DIR / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
