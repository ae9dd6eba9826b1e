#!/usr/bin/env python3
"""How noisy is a 5-seed median? Reads the recorded TPE runs (`reference.tsv`,
`reference_baselines.tsv`; no Optuna needed) and compares the median of each group of 5 seeds
(0–4, 5–9, …) with the median of all recorded seeds, at budget 30, the way the benchmark
compares ours: (f(baseline) − group) / (f(baseline) − all). A method exactly as good as TPE,
judged on 5 seeds, lands where these groups land.

    python3 tpe_selfcheck.py
"""

import collections
import os
import statistics


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    base, runs = {}, collections.defaultdict(dict)
    for name in ("reference.tsv", "reference_baselines.tsv"):
        for line in open(os.path.join(here, name)):
            if line.startswith(("#", "function")):
                continue
            f = line.rstrip("\n").split("\t")
            if f[1] == "baseline":
                base[f[0]] = float(f[4])
            elif f[1] == "tpe" and f[3] == "30":
                runs[f[0]][int(f[2])] = float(f[4])
    groups = below = 0
    worst = []
    for label in sorted(runs):
        seeds = runs[label]
        b, all_ = base[label], statistics.median(seeds.values())
        if b - all_ <= 1e-12:
            continue
        for first in range(0, len(seeds) - 4, 5):
            group = statistics.median(seeds[s] for s in range(first, first + 5))
            pct = (b - group) / (b - all_) * 100
            groups += 1
            below += pct < 100
            worst.append((pct, f"{label} seeds {first}-{first + 4}"))
    print(f"5-seed groups: {groups}, below 100 % of the all-seed median: {below}")
    for pct, what in sorted(worst)[:8]:
        print(f"  {what}: {pct:.1f}%")


if __name__ == "__main__":
    main()
