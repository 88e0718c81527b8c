"""Estimation benchmark: coverage and width of intervals that combine LLM labels with a human budget
(ALGORITHMS.md §8; issue 13).

    python manage.py bench_estimates --data ../shared/data/routing/stance.csv --budget 500 --trials 200

Reads the routing format; `gold` plays the humans. Two statistics of the corpus: the prevalence of the most
common gold label (prediction f = the LLM's probability of that label) and the LLM's accuracy (f = the LLM's
probability of its own label). Per trial and statistic, at the same expected number of human labels:

- human-only: a uniform sample of `budget` items, classical interval; also with the finite-population
  correction (the sample is a sizeable share of a small corpus, and CDI's Horvitz–Thompson variance has that
  correction built in, so the fair reference for CDI is the corrected one);
- PPI++ (uniform sample, power-tuned, ppi_py);
- CDI: a Poisson sample with π ∝ √(1 − LLM confidence) mixed with uniform (`--uniform-share`), the
  estimator of evaluation.estimation.cdi_estimate.

Prints one JSON line: {"data", "n", "budget", "trials", "alpha", "statistics": [{"name", "truth",
"coverage": {"human_only", "ppi", "cdi"}, "width_ratio": {"ppi", "cdi", "cdi_vs_corrected_human"},
"width_ratio_max": {...}, "human_labels_mean": {...}}], "seconds"}. width_ratio = mean over trials of
(interval width / human-only width at the same budget).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands.bench_certify import bench_items
from annotation.management.commands.bench_routing import read_routing_csv
from evaluation.estimation import (
    Estimate,
    cdi_estimate,
    cdi_inclusion_probabilities,
    human_only_estimate,
    poisson_sample,
    ppi_estimate,
)


def corrected_human_only(estimate: Estimate, *, population: int) -> Estimate:
    """The human-only interval narrowed by the finite-population correction √(1 − n/N)."""
    factor = math.sqrt(max(0.0, 1 - estimate.human_labels / population))
    half = (estimate.high - estimate.low) / 2 * factor
    return Estimate(
        estimate.point, estimate.point - half, estimate.point + half, estimate.human_labels, "human_only"
    )


def statistic_trial(
    y: np.ndarray, f: np.ndarray, pi: np.ndarray, *, budget: int, alpha: float, rng: np.random.Generator
) -> dict[str, Estimate]:
    n = len(y)
    uniform = rng.choice(n, size=budget, replace=False)
    others = np.ones(n, dtype=bool)
    others[uniform] = False
    human = human_only_estimate(y[uniform], alpha=alpha)
    sampled = poisson_sample(pi, rng=rng)
    return {
        "human_only": human,
        "human_only_corrected": corrected_human_only(human, population=n),
        "ppi": ppi_estimate(y[uniform], f[uniform], f[others], alpha=alpha),
        "cdi": cdi_estimate(f, sampled=sampled, y_sampled=y[sampled], pi=pi, alpha=alpha),
    }


def summarise(name: str, truth: float, trials: list[dict[str, Estimate]]) -> dict:
    def covered(key: str) -> float:
        return round(float(np.mean([t[key].low <= truth <= t[key].high for t in trials])), 4)

    def ratios(key: str, reference: str) -> np.ndarray:
        return np.array([t[key].width / t[reference].width for t in trials])

    width = {
        "ppi": ratios("ppi", "human_only"),
        "cdi": ratios("cdi", "human_only"),
        "cdi_vs_corrected_human": ratios("cdi", "human_only_corrected"),
    }
    return {
        "name": name,
        "truth": round(truth, 4),
        "coverage": {key: covered(key) for key in ("human_only", "ppi", "cdi")},
        "width_ratio": {key: round(float(values.mean()), 4) for key, values in width.items()},
        "width_ratio_max": {key: round(float(values.max()), 4) for key, values in width.items()},
        "human_labels_mean": {
            key: round(float(np.mean([t[key].human_labels for t in trials])), 1) for key in ("ppi", "cdi")
        },
    }


class Command(BaseCommand):
    help = "Measure coverage and width of PPI++ / CDI intervals against human-only (one JSON line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--data", required=True, help="CSV in the routing format (../shared/data/README.md)"
        )
        parser.add_argument("--budget", type=int, default=500, help="expected number of human labels")
        parser.add_argument("--trials", type=int, default=200)
        parser.add_argument("--alpha", type=float, default=0.1, help="1 − nominal coverage")
        parser.add_argument("--uniform-share", type=float, default=0.2, help="uniform part of CDI's π")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        path = Path(options["data"])
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        rows = read_routing_csv(path)
        budget, trials, alpha = options["budget"], options["trials"], options["alpha"]
        if not 2 <= budget <= len(rows) or trials < 1 or not 0 < alpha < 1:
            raise CommandError(f"--budget must be in [2, {len(rows)}], --trials ≥ 1, --alpha in (0, 1).")
        if not 0 < options["uniform_share"] <= 1:
            raise CommandError("--uniform-share must be in (0, 1].")
        rng = np.random.default_rng(options["seed"])
        items = bench_items(rows, confidence="given", rng=rng)
        confidence = items.confidence
        pi = cdi_inclusion_probabilities(
            np.sqrt(np.clip(1 - confidence, 0, 1)), budget=budget, uniform_share=options["uniform_share"]
        )
        common = int(np.bincount(items.gold[items.gold >= 0]).argmax())
        statistics = {
            f"prevalence of {items.labels[common]}": (
                (items.gold == common).astype(float),
                items.probs[:, common],
            ),
            "llm_accuracy": (1 - items.wrong, confidence),
        }
        results = []
        for name, (y, f) in statistics.items():
            measured = [statistic_trial(y, f, pi, budget=budget, alpha=alpha, rng=rng) for _ in range(trials)]
            results.append(summarise(name, float(y.mean()), measured))
        self.stdout.write(
            json.dumps(
                {
                    "data": str(path),
                    "n": len(rows),
                    "budget": budget,
                    "trials": trials,
                    "alpha": alpha,
                    "cdi_uniform_share": options["uniform_share"],
                    "statistics": results,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )
