#!/usr/bin/python3
"""Optuna 3.1 (Debian's python3-optuna) on the tuner benchmark's problems.

Prints one JSON object on stdout:
  quality: {problem: [regret per seed]} for TPE (defaults) after `trials` trials;
  multi_objective: {"tpe": [...], "nsga2": [...]} ZDT1 (30 parameters) hypervolume of all
           results against (1.1, 11), per seed;
  constrained: {"tpe": [...]} Branin restricted to the disc of radius 5 around
           (2.5, 7.5): regret of the best feasible result against the feasible optimum
           (null when no trial was feasible), TPE with constraints_func;
  latency: {N: {"p50_ms": .., "p99_ms": ..}} of ask + suggest x 6 + tell overhead at N
           completed trials (6-D Hartmann6 space), the objective excluded.
Run with /usr/bin/python3 (Debian's interpreter, where python3-optuna lives).
"""
import argparse
import json
import math
import time

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)


def branin(x):
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
     [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
     [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
     [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6)))
                for i in range(4))


PROBLEMS = {
    "branin": (branin, [(-5, 10), (0, 15)], 0.397887),
    "hartmann6": (hartmann6, [(0, 1)] * 6, -3.32237),
}


def regret(name, seed, trials):
    f, bounds, optimum = PROBLEMS[name]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    for _ in range(trials):
        trial = study.ask()
        x = [trial.suggest_float("x%d" % i, lo, hi) for i, (lo, hi) in enumerate(bounds)]
        study.tell(trial, f(x))
    return study.best_value - optimum


def zdt1(x):
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return x[0], g * (1 - math.sqrt(x[0] / g))


def hypervolume_2d(points, reference):
    """Area dominated by `points` (minimized) inside the box up to `reference`."""
    inside = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    area, lowest, stairs = 0.0, reference[1], []
    for p in inside:
        if p[1] < lowest:
            stairs.append(p)
            lowest = p[1]
    for i, p in enumerate(stairs):
        right = stairs[i + 1][0] if i + 1 < len(stairs) else reference[0]
        area += (right - p[0]) * (reference[1] - p[1])
    return area


def zdt1_hypervolume(sampler, trials, dims=30):
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    points = []
    for _ in range(trials):
        trial = study.ask()
        f = zdt1([trial.suggest_float("x%d" % i, 0, 1) for i in range(dims)])
        points.append(f)
        study.tell(trial, f)
    return hypervolume_2d(points, (1.1, 11.0))


def disc(x):
    return (x[0] - 2.5) ** 2 + (x[1] - 7.5) ** 2 - 25


def feasible_branin_optimum(steps=3000):
    x0 = np.linspace(-2.5, 7.5, steps + 1)[:, None]
    x1 = np.linspace(2.5, 12.5, steps + 1)[None, :]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    y = (x1 - b * x0 ** 2 + c * x0 - 6) ** 2 + 10 * (1 - t) * np.cos(x0) + 10
    inside = (x0 - 2.5) ** 2 + (x1 - 7.5) ** 2 - 25 <= 0
    return float(y[inside].min())


def constrained_regret(seed, trials, optimum):
    sampler = optuna.samplers.TPESampler(
        seed=seed, constraints_func=lambda t: (t.user_attrs["c"],))
    study = optuna.create_study(sampler=sampler)
    best = None
    for _ in range(trials):
        trial = study.ask()
        x = [trial.suggest_float("x0", -5, 10), trial.suggest_float("x1", 0, 15)]
        y, c = branin(x), disc(x)
        trial.set_user_attr("c", c)
        study.tell(trial, y)
        if c <= 0 and (best is None or y < best):
            best = y
    return None if best is None else best - optimum


def latency(n_values, window):
    f, bounds, _ = PROBLEMS["hartmann6"]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    out = {}
    done = 0
    for n in sorted(n_values):
        samples = []
        while done < n + window:
            t0 = time.perf_counter()
            trial = study.ask()
            x = [trial.suggest_float("x%d" % i, lo, hi) for i, (lo, hi) in enumerate(bounds)]
            t1 = time.perf_counter()
            y = f(x)
            t2 = time.perf_counter()
            study.tell(trial, y)
            t3 = time.perf_counter()
            if done >= n:
                samples.append(((t1 - t0) + (t3 - t2)) * 1000)
            done += 1
        out[str(n)] = {"p50_ms": float(np.percentile(samples, 50)),
                       "p99_ms": float(np.percentile(samples, 99))}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--latency_n", default="100,1000")
    parser.add_argument("--latency_window", type=int, default=10)
    parser.add_argument("--skip_quality", action="store_true")
    parser.add_argument("--skip_latency", action="store_true")
    args = parser.parse_args()
    result = {"optuna_version": optuna.__version__}
    if not args.skip_quality:
        result["quality"] = {name: [regret(name, s, args.trials) for s in range(args.first_seed, args.first_seed + args.seeds)]
                             for name in PROBLEMS}
        result["multi_objective"] = {
            "tpe": [zdt1_hypervolume(optuna.samplers.TPESampler(seed=s), args.trials)
                    for s in range(args.first_seed, args.first_seed + args.seeds)],
            "nsga2": [zdt1_hypervolume(optuna.samplers.NSGAIISampler(seed=s), args.trials)
                      for s in range(args.first_seed, args.first_seed + args.seeds)],
        }
        optimum = feasible_branin_optimum()
        result["constrained"] = {
            "tpe": [constrained_regret(s, args.trials, optimum) for s in range(args.first_seed, args.first_seed + args.seeds)]}
    if not args.skip_latency:
        result["latency"] = latency([int(n) for n in args.latency_n.split(",")],
                                    args.latency_window)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
