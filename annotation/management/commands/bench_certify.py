"""PAC-labelling benchmark: does the certified threshold keep the error of the final labels ≤ ε, and how many
human labels does it save? (ALGORITHMS.md §8; issue 13.)

    python manage.py bench_certify --data ../shared/data/routing/stance.csv --epsilon 0.05 --alpha 0.05 \\
        --trials 100 --uncertainty learned [--confidence given|shuffled|constant | --shuffle-confidence] \\
        [--bound betting|clt]

Reads the routing format (text, gold, llm_label, llm_confidence, llm_probs); `gold` plays the humans. Each
trial runs the method on the pure core (annotation.routing.certify) and measures, against gold, the realised
error of the final labels (the LLM's where kept, gold where a human labelled) and the share humans labelled.

- `--uncertainty llm`: one stage; u = 1 − the LLM's probability of its own label (ties broken at random),
  `--draws` calibration draws from q = mix of uniform (`--uniform-share`) and ∝ u.
- `--uncertainty learned`: two stages. A first sample of `--fit-draws` items is labelled — drawn without
  replacement mostly where a label-free prior (router.prior_error_score: LLM confidence, student and
  neighbour disagreement) says the LLM is probably wrong, `--fit-uniform-share` of it uniform
  (certify.draw_fit_sample), so most of it lands on items humans label anyway — and the router's error model
  (annotation.routing.router.predict_error: LLM confidence, label, student and neighbour agreement on real
  sentence embeddings, a student trained on the humans' labels) is fitted on it. Items whose predicted error
  puts them beyond any plausible threshold go to humans directly (certify.keepable_items, `--keep-margin`;
  0 turns it off); then `--draws` calibration draws from the keepable items, q ∝ (predicted error)^`--power`
  mixed with uniform (`--uniform-share`), and the bound uses only those (the score never sees them).
- `--confidence shuffled|constant` (`--shuffle-confidence` = `--confidence shuffled`) replaces the LLM's
  confidence by a random permutation of itself / one value for every item: what happens when the confidence
  is uninformative. The baseline runs on the same variant.

Every run also measures the authors' baseline the same way (500 uniform calibration draws, the LLM's
confidence as u, betting bound) on the same confidence variant. Prints one JSON line:

    {"data", "n", "llm_accuracy", "epsilon", "alpha", "trials", "method": {...settings},
     "violation_rate", "error_q95", "error_mean", "human_share_mean", "saved_share_mean",
     "baseline": {"violation_rate", "error_q95", "error_mean", "human_share_mean", "saved_share_mean"},
     "saved_vs_baseline", "seconds"}

The first `--end-to-end-trials` trials (default 1) answer through the review services instead of reading
gold from arrays (ReviewServicesTrial: batches enter the review queue with review_tasks_create, an annotator
answers with gold through review_next / review_answer_submit, the bound reads the samples' final labels, and
the realised error is measured on the final labels in the database). `--end-to-end-path review` (default)
puts the method's batches into the queue through that service directly; `--end-to-end-path quality-target`
runs the quality-target routing service itself instead (quality_target_trial; annotation/routing/
quality_target.py): the project's RoutingPolicy gets ε, 1 − α, `--draws` calibration draws and the
`--uncertainty` score, routing_route_next_batch routes its phases, the annotator answers them with gold, and the
JSON's "end_to_end" reports the error, human share and the LabelCertificate's statement. That path uses the
service's own settings, not the flags: with the learned score the same design as this command's defaults
(fit sample of `--draws` items drawn mostly where the prior says "wrong", keepable region with margin 3, draws
30 % uniform and ∝ √ predicted error, bound auto); with the LLM's score a 50 % uniform mix.
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
from annotation.routing.certify import (
    calibration_probabilities,
    certify_threshold,
    draw_calibration,
    draw_fit_sample,
    keepable_items,
)
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
    power: float = 1.0,
    fit_uniform_share: float = 1.0,
    keep_margin: float | None = None,
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
        from annotation.routing.router import predict_error, prior_error_score

        if fit_uniform_share >= 1:
            first = rng.choice(n, size=min(fit_draws, n - 1), replace=False)
        else:
            first = draw_fit_sample(
                prior_error_score(router),
                size=min(fit_draws, n - 1),
                rng=rng,
                uniform_share=fit_uniform_share,
            )
        already_human[first] = True
        prediction = predict_error(
            router,
            reviewed=first,
            llm_was_wrong=answer(first).astype(bool),
            reviewed_labels=items.gold[first],
        )
        uncertainty = prediction.probability + tie_break
        if keep_margin is not None:
            already_human |= ~keepable_items(
                prediction.probability, epsilon=epsilon, margin=keep_margin, already_human=already_human
            )
    sampling = calibration_probabilities(
        uncertainty, uniform_share=uniform_share, power=power, already_human=already_human
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


@dataclass(frozen=True)
class QualityTargetOutcome:
    """One quality-target trial: the realised error of the project's final labels against gold, the share of
    items a human labelled, and the certificate the service wrote (certificate_as_dict; None if none was)."""

    error: float
    human_share: float
    certificate: dict | None
    steps: int


QUALITY_TARGET_MAX_STEPS = 20  # fit, calibration, threshold, certificate: a handful; a stuck loop stops here


def quality_target_trial(
    rows: list[dict], items: BenchItems, options: dict, *, seed: int | None = None
) -> QualityTargetOutcome:
    """One trial through the quality-target routing service end to end (annotation.routing.quality_target):
    a project holds the rows as imported LLM labels (with the confidence variant's distribution), its routing
    policy is a quality target with ε, 1 − α, `--draws` calibration draws and the `--uncertainty` score; then
    routing_route_next_batch routes (fit sample, calibration sample, threshold batch) and an annotator answers
    every routed item with gold through review_next / review_answer_submit, until the service writes its
    LabelCertificate or nothing more routes. `seed` fixes the service's calibration seed (reproducible runs)."""
    from unittest import mock

    from annotation.models import CertifyScore, LabelCertificate, RoutingStrategy
    from annotation.review.queue import review_gold_rate_set
    from annotation.routing import quality_target
    from annotation.routing.certificates import certificate_as_dict, certificate_is_stale
    from annotation.routing.services import routing_policy_for, routing_route_next_batch
    from annotation.routing.signals import signals_refresh

    labels = items.labels
    imported = [
        {
            **row,
            "confidence": float(items.confidence[i]),
            "distribution": {name: float(items.probs[i, j]) for j, name in enumerate(labels)},
        }
        for i, row in enumerate(rows)
    ]
    services = ReviewServicesTrial(imported, items)
    project = services.project
    review_gold_rate_set(project=project, gold_rate=0.0)  # no gold items: every answer is a routed item's
    learned = options["uncertainty"] == "learned"
    if learned:
        signals_refresh(project=project)  # student and neighbour agreement, as after a real import
    policy = routing_policy_for(project=project)
    policy.strategy = RoutingStrategy.QUALITY_TARGET
    policy.target_error = options["epsilon"]
    policy.target_confidence = 1.0 - options["alpha"]
    policy.calibration_size = options["draws"]
    policy.certify_score = CertifyScore.LEARNED if learned else CertifyScore.LLM
    policy.annotators_per_item = 1
    policy.save()
    fixed_seed = int(seed) if seed is not None else quality_target._fresh_seed()
    steps = 0
    with mock.patch.object(quality_target, "_fresh_seed", lambda: fixed_seed):
        while steps < QUALITY_TARGET_MAX_STEPS:
            steps += 1
            routed = routing_route_next_batch(project=project)
            answered = services.answer_queue()  # the answers' own hooks may route the next batch meanwhile
            if LabelCertificate.objects.filter(project=project).exists() or not (routed or answered):
                break
    error, share = services.outcome(np.zeros(len(rows), dtype=bool))
    certificate = LabelCertificate.objects.filter(project=project).order_by("-id").first()
    return QualityTargetOutcome(
        error=error,
        human_share=share,
        certificate=(
            certificate_as_dict(certificate, stale=certificate_is_stale(certificate)) if certificate else None
        ),
        steps=steps,
    )


class ReviewServicesTrial:
    """Gold answers through the real review services: each batch of items is put into the review queue
    (annotation.review.queue.review_tasks_create) of a project holding the data as imported LLM labels,
    and an annotator answers each with gold (review_next + review_answer_submit, the path a human's answer
    takes); what the bound sees is read back from the samples' final labels. The method's batches enter the
    queue through that service directly (quality_target_trial routes through the quality-target service)."""

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
        from annotation.review.queue import review_tasks_create
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
        self.answer_queue()
        final = dict(
            Sample.objects.filter(pk__in=[self.samples[i].pk for i in unique]).values_list(
                "pk", "final_label"
            )
        )
        labels = self.items.labels
        return np.array(
            [float(final[self.samples[i].pk] != labels[self.items.llm_label[i]]) for i in np.asarray(indices)]
        )

    def answer_queue(self) -> int:
        """The annotator answers whatever the review queue serves, with gold, until it is empty."""
        from annotation.review.answers import review_answer_submit
        from annotation.review.queue import review_next

        answered = 0
        while (assignment := review_next(project=self.project, annotator=self.annotator)) is not None:
            review_answer_submit(assignment=assignment, label=self.gold_of(assignment.task.sample_id))
            answered += 1
        return answered

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
        parser.add_argument(
            "--shuffle-confidence",
            action="store_true",
            help="same as --confidence shuffled: destroys the information in the LLM's confidence",
        )
        parser.add_argument(
            "--bound",
            choices=("auto", "betting", "clt"),
            default="auto",
            help="auto: betting below certify.CLT_MIN_DRAWS draws, CLT from there (the quality-target policy's rule)",
        )
        parser.add_argument("--draws", type=int, default=400, help="calibration draws (with replacement)")
        parser.add_argument(
            "--fit-draws", type=int, default=400, help="first sample the learned score fits on"
        )
        parser.add_argument(
            "--fit-uniform-share",
            type=float,
            default=0.2,
            help="uniform part of the fit sample (the rest ∝ prior²); 1 = a uniform fit sample",
        )
        parser.add_argument(
            "--keep-margin",
            type=float,
            default=3.0,
            help="learned: only items whose summed predicted error stays ≤ margin·ε may be kept (0 = all)",
        )
        parser.add_argument("--uniform-share", type=float, default=0.3, help="uniform part of the draw mix")
        parser.add_argument(
            "--power", type=float, default=0.5, help="draw probabilities ∝ uncertainty**power (0.5: ∝ √p)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--end-to-end-trials",
            type=int,
            default=1,
            help="how many of the trials answer through the review services (in the throwaway database)",
        )
        parser.add_argument(
            "--end-to-end-path",
            choices=("review", "quality-target"),
            default="review",
            help="review: batches enter the queue via review_tasks_create; quality-target: the quality-target "
            "routing service routes (RoutingPolicy with ε, 1 − α, --draws, --uncertainty) and certifies",
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
        if not 0 < options["fit_uniform_share"] <= 1 or options["keep_margin"] < 0 or options["power"] < 0:
            raise CommandError("--fit-uniform-share must be in (0, 1]; --keep-margin and --power at least 0.")
        if options["shuffle_confidence"]:
            options["confidence"] = "shuffled"
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
                        "power": options["power"],
                        "fit_uniform_share": (
                            options["fit_uniform_share"] if options["uncertainty"] == "learned" else None
                        ),
                        "keep_margin": options["keep_margin"]
                        if options["uncertainty"] == "learned"
                        else None,
                    },
                    **measured,
                    "baseline": {
                        "draws": BASELINE_DRAWS,
                        "uniform_share": 1.0,
                        "bound": "betting",
                        **reference,
                    },
                    "end_to_end": self.end_to_end_report(end_to_end, options["end_to_end_path"]),
                    "saved_vs_baseline": (
                        round(measured["saved_share_mean"] / reference["saved_share_mean"], 3)
                        if reference["saved_share_mean"] > 0
                        else None
                    ),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )

    def end_to_end_report(self, end_to_end: list[tuple[float, float]], path: str) -> dict:
        report = {
            "trials": len(end_to_end),
            "path": path,
            "errors": [round(error, 4) for error, _ in end_to_end],
            "human_shares": [round(share, 4) for _, share in end_to_end],
        }
        if path == "review":
            report["services"] = "review_tasks_create, review_next, review_answer_submit, final labels"
            return report
        report["services"] = (
            "quality-target RoutingPolicy, routing_route_next_batch, review_next, review_answer_submit, "
            "LabelCertificate"
        )
        certificates = getattr(self, "certificates", [])
        if end_to_end:  # the first trial's figures in full (one trial by default)
            error, share = end_to_end[0]
            first = certificates[0] if certificates else None
            report.update(
                error=round(error, 4),
                human_share=round(share, 4),
                statement=first["statement"] if first else None,
                certificate=(
                    {
                        name: first[name]
                        for name in (
                            "upper_bound",
                            "estimated_error",
                            "error_ci_low",
                            "error_ci_high",
                            "threshold",
                            "human_count",
                            "calibration_count",
                            "item_count",
                            "stale",
                        )
                    }
                    if first
                    else None
                ),
            )
        if len(certificates) > 1:
            report["statements"] = [c["statement"] if c else None for c in certificates]
        return report

    def run_trials(
        self, rows: list[dict], items: BenchItems, rng: np.random.Generator, options: dict
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]:
        """(every method trial, the end-to-end ones among them, the baseline trials). The first
        `--end-to-end-trials` method trials answer through the review services."""
        self.certificates: list[dict | None] = []  # the quality-target trials' certificates, in order
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
            "power": options["power"],
            "fit_uniform_share": options["fit_uniform_share"],
            "keep_margin": options["keep_margin"] or None,
        }
        method, end_to_end = [], []
        for trial in range(options["trials"]):
            if trial < options["end_to_end_trials"] and options["end_to_end_path"] == "quality-target":
                outcome = quality_target_trial(rows, items, options, seed=int(rng.integers(2**32)))
                self.certificates.append(outcome.certificate)
                end_to_end.append((outcome.error, outcome.human_share))
                method.append(end_to_end[-1])
            elif trial < options["end_to_end_trials"]:
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
