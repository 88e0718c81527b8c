"""PAC-labelling benchmark: does the certified threshold keep the error of the final labels ≤ ε, and how many
human labels does it save? (ALGORITHMS.md §8; issue 13.)

    python manage.py bench_certify --data ../shared/data/routing/stance.csv --epsilon 0.05 --alpha 0.05 \\
        --trials 100 --uncertainty learned [--confidence given|shuffled|constant] [--bound betting|clt]

Reads the routing format (text, gold, llm_label, llm_confidence, llm_probs); `gold` plays the humans. Each
trial runs the method on the pure core (annotation.routing.certify) and measures, against gold, the realised
error of the final labels (the LLM's where kept, gold where a human labelled) and the share humans labelled.

- `--uncertainty llm`: one stage; u = 1 − the LLM's probability of its own label (ties broken at random),
  `--draws` calibration draws from q = mix of uniform (`--uniform-share`) and ∝ u.
- `--uncertainty learned`: two stages. A uniform first sample of `--fit-draws` items is labelled and the
  router's error model (annotation.routing.router.predict_error: LLM confidence, label, student and
  neighbour agreement on real sentence embeddings, a student trained on the humans' labels) is fitted on it;
  then `--draws` calibration draws from the other items, q ∝ predicted error mixed with uniform, and the
  bound uses only those (the score never sees them).
- `--confidence shuffled|constant` replaces the LLM's confidence by a random permutation of itself / one
  value for every item: what happens when the confidence is uninformative.

Every run also measures the authors' baseline the same way (500 uniform calibration draws, the LLM's
confidence as u, betting bound) on the same confidence variant. Prints one JSON line:

    {"data", "n", "llm_accuracy", "epsilon", "alpha", "trials", "method": {...settings},
     "violation_rate", "error_q95", "error_mean", "human_share_mean", "saved_share_mean",
     "baseline": {"violation_rate", "error_q95", "error_mean", "human_share_mean", "saved_share_mean"},
     "saved_vs_baseline", "seconds"}

The first `--end-to-end-trials` trials (default 1) answer through the review services instead of reading
gold from arrays (ReviewServicesTrial: batches enter the review queue with review_tasks_create, an annotator
answers with gold through review_next / review_answer_submit, the bound reads the samples' final labels, and
the realised error is measured on the final labels in the database). The quality-target routing mode that
would pick those batches itself is not built yet, so they enter the queue through that service directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation.management.commands.bench_routing import (
    embeddings_restore,
    embeddings_save,
    label_set,
    read_routing_csv,
)
from annotation.routing.certify import calibration_probabilities, certify_threshold, draw_calibration
from synthstudio import celery_app
from synthstudio.benchmarking import throwaway_database
from synthstudio.embeddings import embed_texts

# Random tie-breaks: verbalised confidences take a handful of values, and a threshold inside a tied block
# must be able to keep part of it (the authors break ties the same way).
TIE_BREAK = 1e-6
BASELINE_DRAWS = 500


@dataclass(frozen=True)
class BenchItems:
    """The data as arrays: `probs` (n, L) the LLM's distribution (from llm_probs, else its confidence on its
    label and the rest spread evenly), `llm_label`/`gold` column indices (gold −1 if not a label),
    `wrong` 1.0 where the LLM's label differs from gold."""

    probs: np.ndarray
    llm_label: np.ndarray
    gold: np.ndarray
    wrong: np.ndarray
    text_length: np.ndarray
    labels: list[str]

    @property
    def confidence(self) -> np.ndarray:
        return self.probs[np.arange(len(self.llm_label)), self.llm_label]


def bench_items(rows: list[dict], *, confidence: str, rng: np.random.Generator) -> BenchItems:
    labels = label_set(rows)
    column = {name: position for position, name in enumerate(labels)}
    n, width = len(rows), len(labels)
    missing = [i + 2 for i, row in enumerate(rows) if row["label"] not in column]
    if missing:
        raise CommandError(f"rows without an LLM label (line {missing[0]} and {len(missing) - 1} more)")
    llm_label = np.array([column[row["label"]] for row in rows])
    probs = np.zeros((n, width))
    for i, row in enumerate(rows):
        if row["distribution"]:
            for name, value in row["distribution"].items():
                probs[i, column[name]] = float(value)
            probs[i] /= max(probs[i].sum(), 1e-12)
        else:
            own = row["confidence"] if row["confidence"] is not None else 1.0 / width
            probs[i, :] = (1 - own) / max(1, width - 1)
            probs[i, llm_label[i]] = own
    if confidence == "shuffled":
        probs = probs[rng.permutation(n)]
        own = probs.max(axis=1)
        probs[:] = ((1 - own) / max(1, width - 1))[:, None]
        probs[np.arange(n), llm_label] = own
    elif confidence == "constant":
        probs[:] = 1.0 / width
    gold = np.array([column.get(row["gold"], -1) for row in rows])
    return BenchItems(
        probs=probs,
        llm_label=llm_label,
        gold=gold,
        wrong=(gold != llm_label).astype(np.float64),
        text_length=np.array([len(row["text"]) for row in rows]),
        labels=labels,
    )


def router_items(items: BenchItems, embeddings: np.ndarray):
    """The learned router's inputs: the LLM's distribution plus the unsupervised signals on embeddings."""
    from annotation.routing.router import RouterItems
    from annotation.routing.sample_signals import knn_label_agreement, student_oof_probability

    labels = [items.labels[i] for i in items.llm_label]
    return RouterItems(
        probs=items.probs,
        llm_label=items.llm_label,
        student_prob=student_oof_probability(embeddings, labels),
        knn_agreement=knn_label_agreement(embeddings, labels),
        text_length=items.text_length,
        embeddings=embeddings,
    )


def certify_trial(
    items: BenchItems,
    *,
    rng: np.random.Generator,
    epsilon: float,
    alpha: float,
    draws: int,
    uniform_share: float,
    bound: str,
    router=None,
    fit_draws: int = 0,
    ask_humans: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """One run of the method; returns the bool mask of items humans label. `ask_humans(indices)` returns,
    per index, 1.0 where the human's label differs from the LLM's (default: gold plays the humans, read from
    the arrays; the end-to-end trial answers through the review services instead)."""
    answer = ask_humans or (lambda indices: items.wrong[indices])
    n = len(items.wrong)
    tie_break = rng.uniform(0, TIE_BREAK, n)
    already_human = np.zeros(n, dtype=bool)
    if router is None:
        uncertainty = 1.0 - items.confidence + tie_break
    else:
        from annotation.routing.router import predict_error

        first = rng.choice(n, size=min(fit_draws, n - 1), replace=False)
        already_human[first] = True
        prediction = predict_error(
            router,
            reviewed=first,
            llm_was_wrong=answer(first).astype(bool),
            reviewed_labels=items.gold[first],
        )
        uncertainty = prediction.probability + tie_break
    sampling = calibration_probabilities(
        uncertainty, uniform_share=uniform_share, already_human=already_human
    )
    drawn = draw_calibration(sampling, draws=draws, rng=rng)
    result = certify_threshold(
        uncertainty,
        draws=drawn,
        sampling=sampling,
        loss=answer(drawn),
        epsilon=epsilon,
        alpha=alpha,
        bound=bound,
        already_human=already_human,
    )
    return result.human


class ReviewServicesTrial:
    """Gold answers through the real review services: each batch of items is put into the review queue
    (annotation.review.queue.review_tasks_create) of a project holding the data as imported LLM labels,
    and an annotator answers each with gold (review_next + review_answer_submit, the path a human's answer
    takes); what the bound sees is read back from the samples' final labels. The quality-target routing mode
    (issue 13) does not exist yet, so the method's batches enter the queue through that service directly."""

    def __init__(self, rows: list[dict], items: BenchItems) -> None:
        from django.contrib.auth import get_user_model

        from annotation.labelling.services import llm_annotations_import
        from synthstudio.models import Membership, Role
        from synthstudio.services import codebook_create_version, project_create

        users = get_user_model().objects
        lead, _ = users.get_or_create(username="bench-certify-lead")
        self.annotator, _ = users.get_or_create(username="bench-certify-annotator")
        self.project = project_create(name="bench certify (end to end)", user=lead)
        Membership.objects.create(project=self.project, user=self.annotator, role=Role.ANNOTATOR)
        codebook_create_version(
            project=self.project,
            user=lead,
            task_description="Certified-labels benchmark.",
            guidelines="",
            labels=[{"name": name} for name in items.labels],
        )
        self.samples = llm_annotations_import(project=self.project, rows=rows)
        self.rows, self.items = rows, items
        self.gold = {sample.pk: row["gold"] for sample, row in zip(self.samples, rows, strict=True)}
        self.batches = 0

    def answer(self, indices: np.ndarray) -> np.ndarray:
        from annotation.review.answers import review_answer_submit
        from annotation.review.queue import review_next, review_tasks_create
        from synthstudio.models import Sample

        unique = sorted({int(i) for i in indices})
        self.batches += 1
        review_tasks_create(
            project=self.project,
            samples_with_reasons=[
                (self.samples[i], "certified labels: calibration / above threshold") for i in unique
            ],
            strategy="certify",
            batch=self.batches,
        )
        while (assignment := review_next(project=self.project, annotator=self.annotator)) is not None:
            review_answer_submit(assignment=assignment, label=self.gold_of(assignment.task.sample_id))
        final = dict(
            Sample.objects.filter(pk__in=[self.samples[i].pk for i in unique]).values_list(
                "pk", "final_label"
            )
        )
        labels = self.items.labels
        return np.array(
            [float(final[self.samples[i].pk] != labels[self.items.llm_label[i]]) for i in np.asarray(indices)]
        )

    def gold_of(self, sample_id: int) -> str:
        return self.gold[sample_id]

    def outcome(self, human: np.ndarray) -> tuple[float, float]:
        """Routes the items humans must label, then measures the final labels against gold."""
        from annotation.models import ReviewTask
        from synthstudio.models import Sample

        reviewed = set(ReviewTask.objects.filter(project=self.project).values_list("sample_id", flat=True))
        missing = [i for i in np.flatnonzero(human) if self.samples[i].pk not in reviewed]
        if missing:
            self.answer(np.array(missing))
        final = dict(Sample.objects.filter(project=self.project).values_list("pk", "final_label"))
        wrong = [final[s.pk] != row["gold"] for s, row in zip(self.samples, self.rows, strict=True)]
        share = ReviewTask.objects.filter(project=self.project).values("sample_id").distinct().count()
        return float(np.mean(wrong)), share / len(self.samples)


def summarise(outcomes: list[tuple[float, float]], epsilon: float) -> dict:
    errors = np.array([error for error, _ in outcomes])
    shares = np.array([share for _, share in outcomes])
    return {
        "violation_rate": round(float(np.mean(errors > epsilon)), 4),
        "error_q95": round(float(np.quantile(errors, 0.95)), 4),
        "error_mean": round(float(errors.mean()), 4),
        "human_share_mean": round(float(shares.mean()), 4),
        "saved_share_mean": round(float(1 - shares.mean()), 4),
    }


class Command(BaseCommand):
    help = "Measure PAC-labelling error guarantees and human labels saved on a routing-format CSV (one JSON line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--data", required=True, help="CSV in the routing format (../shared/data/README.md)"
        )
        parser.add_argument("--epsilon", type=float, default=0.05, help="target error of the final labels")
        parser.add_argument("--alpha", type=float, default=0.05, help="allowed failure probability")
        parser.add_argument("--trials", type=int, default=100)
        parser.add_argument("--uncertainty", choices=("llm", "learned"), default="learned")
        parser.add_argument("--confidence", choices=("given", "shuffled", "constant"), default="given")
        parser.add_argument("--bound", choices=("betting", "clt"), default="betting")
        parser.add_argument("--draws", type=int, default=400, help="calibration draws (with replacement)")
        parser.add_argument(
            "--fit-draws", type=int, default=200, help="first sample the learned score fits on"
        )
        parser.add_argument("--uniform-share", type=float, default=0.5, help="uniform part of the draw mix")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--end-to-end-trials",
            type=int,
            default=1,
            help="how many of the trials answer through the review services (in the throwaway database)",
        )
        parser.add_argument(
            "--current-database",
            action="store_true",
            help="use the configured database instead of a throwaway one (the tests use this)",
        )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        path = Path(options["data"])
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        epsilon, alpha, trials = options["epsilon"], options["alpha"], options["trials"]
        if not (0 < epsilon < 1 and 0 < alpha < 1 and trials >= 1 and options["draws"] >= 1):
            raise CommandError("--epsilon and --alpha must be in (0, 1); --trials and --draws at least 1.")
        if not 0 < options["uniform_share"] <= 1:
            raise CommandError("--uniform-share must be in (0, 1].")
        if not 0 <= options["end_to_end_trials"] <= trials:
            raise CommandError("--end-to-end-trials must be between 0 and --trials.")
        rows = read_routing_csv(path)
        rng = np.random.default_rng(options["seed"])
        items = bench_items(rows, confidence=options["confidence"], rng=rng)
        celery_app.conf.task_always_eager = True  # nothing may land on the real broker
        settings.CELERY_TASK_ALWAYS_EAGER = True
        if options["current_database"]:
            method, end_to_end, baseline = self.run_trials(rows, items, rng, options)
        else:
            with throwaway_database():
                method, end_to_end, baseline = self.run_trials(rows, items, rng, options)
        measured, reference = summarise(method, epsilon), summarise(baseline, epsilon)
        self.stdout.write(
            json.dumps(
                {
                    "data": str(path),
                    "n": len(rows),
                    "llm_accuracy": round(1 - float(items.wrong.mean()), 4),
                    "epsilon": epsilon,
                    "alpha": alpha,
                    "trials": trials,
                    "method": {
                        "uncertainty": options["uncertainty"],
                        "confidence": options["confidence"],
                        "bound": options["bound"],
                        "draws": options["draws"],
                        "fit_draws": options["fit_draws"] if options["uncertainty"] == "learned" else 0,
                        "uniform_share": options["uniform_share"],
                    },
                    **measured,
                    "baseline": {
                        "draws": BASELINE_DRAWS,
                        "uniform_share": 1.0,
                        "bound": "betting",
                        **reference,
                    },
                    "end_to_end": {
                        "trials": len(end_to_end),
                        "path": "review_tasks_create, review_next, review_answer_submit, final labels",
                        "errors": [round(error, 4) for error, _ in end_to_end],
                        "human_shares": [round(share, 4) for _, share in end_to_end],
                    },
                    "saved_vs_baseline": (
                        round(measured["saved_share_mean"] / reference["saved_share_mean"], 3)
                        if reference["saved_share_mean"] > 0
                        else None
                    ),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )

    def run_trials(
        self, rows: list[dict], items: BenchItems, rng: np.random.Generator, options: dict
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
        """(every method trial, the end-to-end ones among them, the baseline trials). The first
        `--end-to-end-trials` method trials answer through the review services."""
        router = None
        if options["uncertainty"] == "learned":
            if not options["current_database"]:
                embeddings_restore()
            embeddings = np.asarray(embed_texts([row["text"] for row in rows]), dtype=np.float64)
            if not options["current_database"]:
                embeddings_save()
            router = router_items(items, embeddings)
        method_settings = {
            "epsilon": options["epsilon"],
            "alpha": options["alpha"],
            "draws": options["draws"],
            "uniform_share": options["uniform_share"],
            "bound": options["bound"],
            "router": router,
            "fit_draws": options["fit_draws"],
        }
        method, end_to_end = [], []
        for trial in range(options["trials"]):
            if trial < options["end_to_end_trials"]:
                services = ReviewServicesTrial(rows, items)
                human = certify_trial(items, rng=rng, ask_humans=services.answer, **method_settings)
                end_to_end.append(services.outcome(human))
                method.append(end_to_end[-1])
            else:
                human = certify_trial(items, rng=rng, **method_settings)
                method.append((float(np.mean(items.wrong * ~human)), float(human.mean())))
        baseline = []
        for _ in range(options["trials"]):
            human = certify_trial(
                items,
                rng=rng,
                epsilon=options["epsilon"],
                alpha=options["alpha"],
                draws=BASELINE_DRAWS,
                uniform_share=1.0,
                bound="betting",
            )
            baseline.append((float(np.mean(items.wrong * ~human)), float(human.mean())))
        return method, end_to_end, baseline
