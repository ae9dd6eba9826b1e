#!/usr/bin/env python3
"""One-off: records Optuna's TPE and random sampler on the search benchmark's test functions.

Writes `reference.tsv` next to this file: one row per (function, method, seed) with the best
value found within the first 30 and the first 100 trials (the true value of the trial with the
best observed value; they differ only for noisy functions). Every study starts with the
function's baseline (enqueued), as a run of the engine starts with its baseline, so a budget of
N counts the baseline. `method=baseline` rows hold f(baseline), which the Rust benchmark checks
against its own functions so the two definitions cannot drift apart silently.

    pip install optuna   # this file was run with the version printed in reference.tsv
    python3 optuna_reference.py [--seeds 5] [--trials 100]

With `--baselines FILE` (the output of `search_bench baselines`) it records TPE started from
each random baseline instead, as function `name@bN`, into `reference_baselines.tsv`:

    search_bench baselines > baselines.json
    python3 optuna_reference.py --baselines baselines.json

The functions must stay identical to `functions.rs` (same formulas, domains, baselines, noise).
"""

import argparse
import json
import math
import os
import struct
import sys

import optuna

# ---------------------------------------------------------------- test functions


def branin(p):
    x1, x2 = p["x1"], p["x2"]
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


H6_ALPHA = [1.0, 1.2, 3.0, 3.2]
H6_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
H6_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(p):
    x = [p[f"x{i + 1}"] for i in range(6)]
    total = 0.0
    for i in range(4):
        inner = 0.0
        for j in range(6):
            inner += H6_A[i][j] * (x[j] - H6_P[i][j]) ** 2
        total += H6_ALPHA[i] * math.exp(-inner)
    return -total


def rosenbrock(p, d):
    x = [p[f"x{i + 1}"] for i in range(d)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(d - 1))


def ackley(p, d):
    x = [p[f"x{i + 1}"] for i in range(d)]
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def levy(p, d):
    w = [1 + (p[f"x{i + 1}"] - 1) / 4 for i in range(d)]
    total = math.sin(math.pi * w[0]) ** 2
    for i in range(d - 1):
        total += (w[i] - 1) ** 2 * (1 + 10 * math.sin(math.pi * w[i] + 1) ** 2)
    total += (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
    return total


def styblinski_tang(p, d):
    x = [p[f"x{i + 1}"] for i in range(d)]
    return 0.5 * sum(v**4 - 16 * v**2 + 5 * v for v in x)


MIXED_FACTOR = {"gemm": 1.5, "winograd": 1.25, "direct": 1.8, "fft": 1.0}
MIXED_BEST_BATCH = {"gemm": 256, "winograd": 64, "direct": 32, "fft": 145}


def mixed(p):
    algo = p["algo"]
    lb = math.log2(p["batch"] / MIXED_BEST_BATCH[algo])
    lw = math.log2(p["workers"] / 6)
    fr = p["frac"] - 0.62
    return MIXED_FACTOR[algo] * (1 + 0.06 * lb * lb + 0.12 * lw * lw + 0.04 * lb * lw + 1.5 * fr * fr)


TRAIN_BASE = {"sgd": 0.45, "momentum": 0.30, "adam": 0.22, "adamw": 0.20, "rmsprop": 0.28}
TRAIN_LR = {"sgd": -1.3, "momentum": -2.0, "adam": -3.2, "adamw": -3.0, "rmsprop": -3.6}
TRAIN_ACT = {"relu": 0.03, "gelu": 0.0, "tanh": 0.08, "silu": 0.01}


def training(p):
    opt = p["optimizer"]
    lw = math.log2(p["width"] / 256)
    layers = p["layers"]
    return (
        TRAIN_BASE[opt]
        + TRAIN_ACT[p["activation"]]
        + 0.08 * (math.log10(p["lr"]) - TRAIN_LR[opt]) ** 2
        + 0.015 * (layers - 5 - lw) ** 2
        + 0.012 * lw * lw
        + 0.6 * (p["dropout"] - 0.05 * layers) ** 2
    )


MASK = (1 << 64) - 1


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def noise_z(seed, names, p):
    """A standard normal draw that depends only on the seed and the parameter values."""
    h = 0xCBF29CE484222325
    data = struct.pack("<Q", seed & MASK)
    for name in names:
        v = p[name]
        if isinstance(v, str):
            data += v.encode() + b"\xff"
        else:
            data += struct.pack("<d", float(v))
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK
    u1 = (splitmix64(h) >> 11) / float(1 << 53)
    u2 = (splitmix64(h ^ 0x9E3779B97F4A7C15) >> 11) / float(1 << 53)
    return math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)


def floats(d, lo, hi, base):
    return {f"x{i + 1}": ("float", lo, hi, False, base) for i in range(d)}


MIXED_SPACE = {
    "batch": ("int", 1, 4096, True, 32),
    "workers": ("int", 1, 32, True, 2),
    "algo": ("cat", ["gemm", "winograd", "direct", "fft"], None, None, "gemm"),
    "frac": ("float", 0.0, 1.0, False, 0.5),
}
TRAINING_SPACE = {
    "lr": ("float", 1e-5, 1.0, True, 0.01),
    "optimizer": ("cat", ["sgd", "momentum", "adam", "adamw", "rmsprop"], None, None, "sgd"),
    "width": ("cat", [32, 64, 128, 256, 512, 1024], None, None, 64),
    "layers": ("int", 1, 8, False, 2),
    "dropout": ("float", 0.0, 0.6, False, 0.0),
    "activation": ("cat", ["relu", "gelu", "tanh", "silu"], None, None, "relu"),
}

# name -> (space, function, noisy)
FUNCTIONS = {
    "branin": ({"x1": ("float", -5.0, 10.0, False, 2.5), "x2": ("float", 0.0, 15.0, False, 7.5)}, branin, False),
    "hartmann6": (floats(6, 0.0, 1.0, 0.5), hartmann6, False),
    "rosenbrock4": (floats(4, -5.0, 5.0, 0.0), lambda p: rosenbrock(p, 4), False),
    "mixed": (MIXED_SPACE, mixed, False),
    "mixed_noisy": (MIXED_SPACE, mixed, True),
    "ackley5": (floats(5, -10.0, 30.0, 10.0), lambda p: ackley(p, 5), False),
    "levy4": (floats(4, -5.0, 15.0, 5.0), lambda p: levy(p, 4), False),
    "styblinski6": (floats(6, -5.0, 5.0, 0.0), lambda p: styblinski_tang(p, 6), False),
    "training": (TRAINING_SPACE, training, False),
}
NOISE = 0.05


def suggest(trial, space):
    p = {}
    for name, (kind, a, b, log, _) in space.items():
        if kind == "float":
            p[name] = trial.suggest_float(name, a, b, log=log)
        elif kind == "int":
            p[name] = trial.suggest_int(name, a, b, log=log)
        else:
            p[name] = trial.suggest_categorical(name, a)
    return p


def run(name, sampler, seed, trials, start=None):
    space, f, noisy = FUNCTIONS[name]
    names = list(space)
    truth = {}

    def objective(trial):
        p = suggest(trial, space)
        y = f(p)
        truth[trial.number] = y
        if noisy:
            y *= 1 + NOISE * noise_z(seed, names, p)
        return y

    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(start if start is not None else {n: s[4] for n, s in space.items()})
    study.optimize(objective, n_trials=trials)
    out = {}
    for budget in (30, 100):
        done = [t for t in study.trials[:budget] if t.value is not None]
        best = min(done, key=lambda t: (t.value, t.number))
        out[budget] = (truth[best.number], best.value)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--baselines", help="JSON from `search_bench baselines`: TPE from those points")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    here = os.path.dirname(os.path.abspath(__file__))
    command = f"python3 optuna_reference.py --seeds {args.seeds} --trials {args.trials}"
    if args.baselines:
        command += " --baselines baselines.json"
    rows = [f"# optuna {optuna.__version__}; {command}"]
    rows.append("function\tmethod\tseed\tbudget\tbest\tobserved")
    if args.baselines:
        with open(args.baselines) as fh:
            starts = json.load(fh)
        for name in args.functions.split(","):
            _, f, _ = FUNCTIONS[name]
            for n, start in sorted(starts[name].items(), key=lambda kv: int(kv[0])):
                label = f"{name}@b{n}"
                rows.append(f"{label}\tbaseline\t-\t1\t{f(start)!r}\t-")
                for seed in range(args.seeds):
                    res = run(name, optuna.samplers.TPESampler(seed=seed), seed, args.trials, start)
                    for budget, (best, observed) in res.items():
                        rows.append(f"{label}\ttpe\t{seed}\t{budget}\t{best!r}\t{observed!r}")
                    print(label, "tpe", seed, res, file=sys.stderr, flush=True)
        with open(os.path.join(here, "reference_baselines.tsv"), "w") as fh:
            fh.write("\n".join(rows) + "\n")
        return
    for name in args.functions.split(","):
        space, f, _ = FUNCTIONS[name]
        rows.append(f"{name}\tbaseline\t-\t1\t{f({n: s[4] for n, s in space.items()})!r}\t-")
        for seed in range(args.seeds):
            methods = {
                "tpe": optuna.samplers.TPESampler(seed=seed),
                "tpe_independent": optuna.samplers.TPESampler(seed=seed, multivariate=False),
                "random": optuna.samplers.RandomSampler(seed=seed),
            }
            for method, sampler in methods.items():
                res = run(name, sampler, seed, args.trials)
                for budget, (best, observed) in res.items():
                    rows.append(f"{name}\t{method}\t{seed}\t{budget}\t{best!r}\t{observed!r}")
                print(name, method, seed, res, file=sys.stderr, flush=True)
    with open(os.path.join(here, "reference.tsv"), "w") as fh:
        fh.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
