#!/usr/bin/python3
"""Optuna 3.1 (Debian's python3-optuna) with RDB storage on a SQLite file, doing the
scheduler benchmark's transitions: per trial ask, `epochs` intermediate reports, tell
(RandomSampler, so the sampler costs next to nothing and storage dominates, as the
scheduler bench's no-op trials do).

Prints one JSON object: {"trials": N, "transitions": M, "seconds": S, "ms_per_trial": ..,
"ms_per_transition": ..}.
"""
import argparse
import json
import os
import tempfile
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transitions", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    per_trial = args.epochs + 2  # ask, reports, tell
    trials = max(1, args.transitions // per_trial)
    with tempfile.TemporaryDirectory() as tmp:
        storage = "sqlite:///" + os.path.join(tmp, "optuna.db")
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                    direction="maximize")
        start = time.perf_counter()
        for _ in range(trials):
            trial = study.ask()
            lr = trial.suggest_float("lr", 0.001, 0.1)
            for step in range(args.epochs):
                trial.report(lr * step, step)
            study.tell(trial, lr)
        seconds = time.perf_counter() - start
    print(json.dumps({"trials": trials, "transitions": trials * per_trial, "seconds": seconds,
                      "ms_per_trial": 1000 * seconds / trials,
                      "ms_per_transition": 1000 * seconds / (trials * per_trial)}))


if __name__ == "__main__":
    main()
