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
- CDI, adaptive (`cdi`; what the "sample for estimation" routing strategy and the estimates page do): the budget
  in `--batches` routing batches planned by annotation.routing.plan.plan_estimation_batch — the first with
  π ∝ √(1 − LLM confidence), each later one with π ∝ √(p (1 − p)) of the learned router's predicted error p,
  refitted on the answers before it (real sentence embeddings) — estimated batch by batch by
  evaluation.estimates_core.batched_estimates with, for LLM accuracy, "the LLM is right" predicted by the
  learned router cross-fitted on all answers (router.cross_fitted_error; the page does the same);
- CDI, one shot (`cdi_one_shot`): one Poisson sample with π ∝ √(1 − LLM confidence) mixed with uniform
  (`--uniform-share`), the LLM's confidence as prediction (evaluation.estimation.cdi_estimate).

Prints one JSON line: {"data", "n", "budget", "trials", "alpha", "statistics": [{"name", "truth",
"coverage": {"human_only", "ppi", "cdi", "cdi_one_shot"}, "width_ratio": {"ppi", "cdi", "cdi_one_shot",
"cdi_vs_corrected_human"}, "width_ratio_max": {...}, "human_labels_mean": {...}}], "seconds"}. width_ratio =
mean over trials of (interval width / human-only width at the same budget). Trials run in `--jobs` processes.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands.bench_certify import BenchItems, bench_items, router_items
from annotation.management.commands.bench_routing import read_routing_csv
from annotation.routing.plan import plan_estimation_batch
from annotation.routing.router import cross_fitted_error, predict_error
from evaluation.estimates_core import AuditBatch, batched_estimates
from evaluation.estimation import (
    Estimate,
    cdi_estimate,
    cdi_inclusion_probabilities,
    human_only_estimate,
    poisson_sample,
    ppi_estimate,
)
from synthstudio.embeddings import encode


def corrected_human_only(estimate: Estimate, *, population: int) -> Estimate:
    """The human-only interval narrowed by the finite-population correction √(1 − n/N)."""
    factor = math.sqrt(max(0.0, 1 - estimate.human_labels / population))
    half = (estimate.high - estimate.low) / 2 * factor
    return Estimate(
        estimate.point, estimate.point - half, estimate.point + half, estimate.human_labels, "human_only"
    )


@dataclass(frozen=True)
class AdaptiveDesign:
    """One trial's adaptive CDI sample: the routing batches' draws and, per item, the learned router's
    cross-fitted P(LLM wrong) on all of them (None if it could not learn)."""

    batches: list[AuditBatch]
    answered: np.ndarray
    cross_fitted_error: np.ndarray | None


def adaptive_design(items: BenchItems, router_in, *, budget: int, batches: int, seed: int) -> AdaptiveDesign:
    """The "sample for estimation" strategy over `batches` routing batches (gold answers each batch before the
    next is planned), as annotation.routing.services runs it."""
    n = len(items.wrong)
    known = np.zeros(n, dtype=bool)
    audit: list[AuditBatch] = []
    for number in range(batches):
        reviewed = np.flatnonzero(known)
        predicted = None
        if reviewed.size:
            prediction = predict_error(
                router_in,
                reviewed=reviewed,
                llm_was_wrong=items.wrong[reviewed].astype(bool),
                reviewed_labels=items.gold[reviewed],
                seed=seed,
            )
            predicted = prediction.probability if prediction.mode == "learned" else None
        remaining = budget - int(known.sum())
        picks = plan_estimation_batch(
            probs=items.probs,
            candidates=np.flatnonzero(~known),
            size=round(remaining / (batches - number)),
            room=remaining,
            predicted_error=predicted,
            seed=(seed, number),
        )
        drawn = np.array([pick.index for pick in picks], dtype=np.int64)
        pi = np.array([pick.inclusion_probability for pick in picks], dtype=np.float64)
        audit.append(AuditBatch(known.copy(), ~known, drawn, pi))
        known[drawn] = True
    reviewed = np.flatnonzero(known)
    error = cross_fitted_error(
        router_in,
        reviewed=reviewed,
        llm_was_wrong=items.wrong[reviewed].astype(bool),
        reviewed_labels=items.gold[reviewed],
        seed=seed,
    )
    return AdaptiveDesign(audit, known, error)


def statistic_trial(
    y: np.ndarray,
    f: np.ndarray,
    pi: np.ndarray,
    design: AdaptiveDesign,
    f_adaptive: np.ndarray,
    *,
    budget: int,
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, Estimate]:
    n = len(y)
    uniform = rng.choice(n, size=budget, replace=False)
    others = np.ones(n, dtype=bool)
    others[uniform] = False
    human = human_only_estimate(y[uniform], alpha=alpha)
    sampled = poisson_sample(pi, rng=rng)
    adaptive = batched_estimates(
        f_adaptive, np.where(design.answered, y, np.nan), design.batches, alpha=alpha
    ).estimate
    if adaptive is None:
        raise CommandError("the adaptive design drew too few items for an interval; raise --budget")
    return {
        "human_only": human,
        "human_only_corrected": corrected_human_only(human, population=n),
        "ppi": ppi_estimate(y[uniform], f[uniform], f[others], alpha=alpha),
        "cdi": adaptive,
        "cdi_one_shot": cdi_estimate(f, sampled=sampled, y_sampled=y[sampled], pi=pi, alpha=alpha),
    }


_WORK: dict = {}  # what the trial processes share (set before they fork)


def _trial(seed: int) -> list[dict[str, Estimate]]:
    """One trial: one adaptive design (one set of human answers serves every statistic, as on the page), then
    each statistic's intervals."""
    work = _WORK
    rng = np.random.default_rng(seed)
    design = adaptive_design(
        work["items"], work["router"], budget=work["budget"], batches=work["batches"], seed=seed
    )
    out = []
    for name, (y, f) in work["statistics"].items():
        f_adaptive = f
        if name == "llm_accuracy" and design.cross_fitted_error is not None:
            f_adaptive = 1.0 - design.cross_fitted_error
        out.append(
            statistic_trial(
                y, f, work["pi"], design, f_adaptive, budget=work["budget"], alpha=work["alpha"], rng=rng
            )
        )
    return out


def summarise(name: str, truth: float, trials: list[dict[str, Estimate]]) -> dict:
    def covered(key: str) -> float:
        return round(float(np.mean([t[key].low <= truth <= t[key].high for t in trials])), 4)

    def ratios(key: str, reference: str) -> np.ndarray:
        return np.array([t[key].width / t[reference].width for t in trials])

    width = {
        "ppi": ratios("ppi", "human_only"),
        "cdi": ratios("cdi", "human_only"),
        "cdi_one_shot": ratios("cdi_one_shot", "human_only"),
        "cdi_vs_corrected_human": ratios("cdi", "human_only_corrected"),
    }
    return {
        "name": name,
        "truth": round(truth, 4),
        "coverage": {key: covered(key) for key in ("human_only", "ppi", "cdi", "cdi_one_shot")},
        "width_ratio": {key: round(float(values.mean()), 4) for key, values in width.items()},
        "width_ratio_max": {key: round(float(values.max()), 4) for key, values in width.items()},
        "human_labels_mean": {
            key: round(float(np.mean([t[key].human_labels for t in trials])), 1)
            for key in ("ppi", "cdi", "cdi_one_shot")
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
        parser.add_argument(
            "--uniform-share", type=float, default=0.2, help="uniform part of the one-shot CDI's π"
        )
        parser.add_argument(
            "--batches", type=int, default=5, help="routing batches of the adaptive CDI design"
        )
        parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes running trials")
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
        if options["batches"] < 1:
            raise CommandError("--batches must be ≥ 1.")
        embeddings = np.asarray(encode([row["text"] for row in rows]), dtype=np.float64)
        _WORK.update(
            items=items,
            router=router_items(items, embeddings),
            statistics=statistics,
            pi=pi,
            budget=budget,
            batches=options["batches"],
            alpha=alpha,
        )
        seeds = [int(seed) for seed in rng.integers(2**32, size=trials)]
        if options["jobs"] > 1:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=options["jobs"], mp_context=context) as pool:
                measured = list(pool.map(_trial, seeds))
        else:
            measured = [_trial(seed) for seed in seeds]
        results = [
            summarise(name, float(y.mean()), [trial[position] for trial in measured])
            for position, (name, (y, _f)) in enumerate(statistics.items())
        ]
        self.stdout.write(
            json.dumps(
                {
                    "data": str(path),
                    "n": len(rows),
                    "budget": budget,
                    "trials": trials,
                    "alpha": alpha,
                    "cdi_uniform_share": options["uniform_share"],
                    "cdi_batches": options["batches"],
                    "statistics": results,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )
