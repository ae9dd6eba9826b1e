#!/usr/bin/env python3
"""One-off: how noisy is a 5-seed median? Runs Optuna's TPE with seeds 5..9 (budget 30) from
the listed baseline and from each random baseline, and compares the median of those runs with
the recorded median of seeds 0..4 (`reference.tsv`, `reference_baselines.tsv`) the way the
benchmark compares ours: (f(baseline) − other) / (f(baseline) − recorded).

    search_bench baselines > baselines.json
    python3 tpe_selfcheck.py baselines.json
"""

import collections
import json
import os
import statistics
import sys

import optuna

import optuna_reference as R


def recorded(here):
    base, runs = {}, collections.defaultdict(list)
    for name in ("reference.tsv", "reference_baselines.tsv"):
        for line in open(os.path.join(here, name)):
            if line.startswith(("#", "function")):
                continue
            f = line.rstrip("\n").split("\t")
            if f[1] == "baseline":
                base[f[0]] = float(f[4])
            elif f[1] == "tpe" and f[3] == "30":
                runs[f[0]].append(float(f[4]))
    return base, runs


def main():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    here = os.path.dirname(os.path.abspath(__file__))
    starts = json.load(open(sys.argv[1]))
    base, runs = recorded(here)
    cells = below = 0
    for name in R.FUNCTIONS:
        for n, start in [("0", None)] + sorted(starts[name].items(), key=lambda kv: int(kv[0])):
            label = name if n == "0" else f"{name}@b{n}"
            other = [R.run(name, optuna.samplers.TPESampler(seed=s), s, 30, start)[30][0] for s in range(5, 10)]
            b, t = base[label], statistics.median(runs[label])
            if b - t <= 1e-12:
                continue
            pct = (b - statistics.median(other)) / (b - t) * 100
            cells += 1
            below += pct < 100
            print(f"{label}\t{pct:.1f}%", flush=True)
    print(f"cells={cells} below_100={below}")


if __name__ == "__main__":
    main()
