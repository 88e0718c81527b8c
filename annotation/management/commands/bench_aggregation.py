"""Benchmark label aggregation on simulated annotators of known accuracy; prints one JSON line.

    python manage.py bench_aggregation --annotators 5 --accuracies 0.9,0.85,0.8,0.6,0.55 --items 2000 --overlap 3

Each item has a uniformly drawn true label; --overlap distinct annotators, drawn uniformly, answer it; an
annotator with accuracy q gives the true label with probability q, otherwise one of the other labels
uniformly. Reports the final-label accuracy of majority vote (ties broken at random, seeded), Dawid–Skene
and Dawid–Skene with --gold of the items' true labels known, all measured on the same non-gold items, and
each annotator's estimated accuracy next to the true one. Dawid–Skene is the app's own path
(annotation.review.aggregation: crowd-kit's fit, then the stored-parameter posterior).
"""

from __future__ import annotations

import json
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from annotation.review.aggregation import dawid_skene_fit, dawid_skene_label, majority_label


class Command(BaseCommand):
    help = "Accuracy of majority vote vs Dawid–Skene (with and without gold) on simulated annotators."

    def add_arguments(self, parser):
        parser.add_argument("--annotators", type=int, default=5)
        parser.add_argument(
            "--accuracies", default="0.9,0.85,0.8,0.6,0.55", help="Comma-separated, one per annotator."
        )
        parser.add_argument("--items", type=int, default=2000)
        parser.add_argument("--overlap", type=int, default=3, help="Annotators per item.")
        parser.add_argument("--classes", type=int, default=2, help="Number of labels.")
        parser.add_argument("--gold", type=float, default=0.05, help="Share of items with a known label.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, annotators, accuracies, items, overlap, classes, gold, seed, **options):
        try:
            accuracy = [float(value) for value in accuracies.split(",")]
        except ValueError as error:
            raise CommandError(f"--accuracies must be comma-separated numbers: {error}") from error
        if len(accuracy) != annotators:
            raise CommandError(f"--accuracies gives {len(accuracy)} values for {annotators} annotators.")
        if not all(0 <= q <= 1 for q in accuracy):
            raise CommandError("Each accuracy must be between 0 and 1.")
        if not 1 <= overlap <= annotators:
            raise CommandError("--overlap must be between 1 and --annotators.")
        if classes < 2 or items < 1 or not 0 <= gold < 1:
            raise CommandError("Need --classes ≥ 2, --items ≥ 1 and 0 ≤ --gold < 1.")
        rng = np.random.default_rng(seed)
        names = [f"label{k}" for k in range(classes)]
        truth = rng.integers(0, classes, size=items)
        answers = []
        for item in range(items):
            for annotator in rng.choice(annotators, size=overlap, replace=False):
                if rng.random() < accuracy[annotator]:
                    given = truth[item]
                else:
                    given = (truth[item] + rng.integers(1, classes)) % classes
                answers.append((item, f"a{annotator}", names[given]))
        gold_items = set(rng.choice(items, size=int(round(gold * items)), replace=False).tolist())
        scored = [item for item in range(items) if item not in gold_items]
        votes: dict[int, dict[str, str]] = {}
        for item, annotator, label in answers:
            votes.setdefault(item, {})[annotator] = label

        def share_right(decide) -> float:
            return round(sum(decide(item) == names[truth[item]] for item in scored) / len(scored), 4)

        tie_rng = np.random.default_rng(seed + 1)

        def majority(item):
            label = majority_label(votes[item].values())
            if label is None:  # a tie: pick one of the tied labels at random
                counts = {name: list(votes[item].values()).count(name) for name in names}
                top = max(counts.values())
                label = str(tie_rng.choice([name for name, count in counts.items() if count == top]))
            return label

        started = time.perf_counter()
        plain = dawid_skene_fit(answers, labels=names)
        anchored = dawid_skene_fit(
            answers, labels=names, gold={item: names[truth[item]] for item in gold_items}
        )
        fit_seconds = time.perf_counter() - started
        result = {
            "items": items,
            "annotators": annotators,
            "accuracies": accuracy,
            "overlap": overlap,
            "classes": classes,
            "gold_items": len(gold_items),
            "scored_items": len(scored),
            "majority_vote": share_right(majority),
            "dawid_skene": share_right(lambda item: dawid_skene_label(plain, votes[item])[0]),
            "dawid_skene_with_gold": share_right(lambda item: dawid_skene_label(anchored, votes[item])[0]),
            "estimated_accuracy": {
                "dawid_skene": [round(plain.accuracy[f"a{a}"], 3) for a in range(annotators)],
                "dawid_skene_with_gold": [round(anchored.accuracy[f"a{a}"], 3) for a in range(annotators)],
            },
            "seconds": {"fit_both": round(fit_seconds, 2)},
        }
        print(json.dumps(result))
