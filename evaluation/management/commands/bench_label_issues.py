"""Benchmark the label-issue list on data with known injected noise; prints one JSON line.

    python manage.py bench_label_issues --data ../shared/data/sst2/train.txt --noise 0.15

Reads "<label> <text>" lines, keeps --rows of them (seeded sample), flips --noise of the labels to another
class, embeds with synthstudio.embeddings.encode, runs the refinement pass (FreeAL split + cleanlab's
confident learning with the margin rule) and reports precision at the noise count: the share of the first
n_noisy ranked issues that really were flipped (a shorter list counts the gap as misses), and the share of
all items flagged (with --noise 0, how much clean data gets flagged). The plain confident-learning list
(student trained on all given labels) is reported alongside.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from evaluation.curation.student import (
    ensemble_probabilities,
    find_label_issues,
    precision_at,
    refine_labels,
    tfidf_features,
)
from synthstudio.embeddings import encode


class Command(BaseCommand):
    help = "Precision at the noise count of the ranked label-issue list on data with injected label noise."

    def add_arguments(self, parser):
        parser.add_argument(
            "--data", required=True, help='A file of "<label> <text>" lines (e.g. SST-2 train.txt).'
        )
        parser.add_argument("--noise", type=float, default=0.15, help="Share of labels to flip (0-1).")
        parser.add_argument("--rows", type=int, default=3000, help="How many rows to use (seeded sample).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--student",
            choices=["ensemble", "embedding"],
            default="ensemble",
            help="ensemble: embedding + TF-IDF students averaged (the app's default); embedding: "
            "the embedding student alone.",
        )

    def handle(self, *args, data: str, noise: float, rows: int, seed: int, student: str, **options):
        path = Path(data)
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        if not 0 <= noise < 1:
            raise CommandError("--noise must be at least 0 and below 1.")
        pairs = [line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if " " in line]
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(pairs), size=min(rows, len(pairs)), replace=False)
        texts = [pairs[i][1] for i in chosen]
        names = sorted({pairs[i][0] for i in chosen})
        gold = np.array([names.index(pairs[i][0]) for i in chosen])
        n_noisy = int(round(noise * len(gold)))
        noisy = rng.choice(len(gold), size=n_noisy, replace=False)
        given = gold.copy()
        given[noisy] = (gold[noisy] + rng.integers(1, len(names), size=n_noisy)) % len(names)
        started = time.perf_counter()
        features = encode(texts)
        embed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        text_features = tfidf_features(texts) if student == "ensemble" else None
        result = refine_labels(
            features,
            given,
            np.zeros(len(given), dtype=bool),
            n_classes=len(names),
            seed=seed,
            text_features=text_features,
        )
        plain = find_label_issues(
            ensemble_probabilities(
                features, given, n_classes=len(names), text_features=text_features, seed=seed
            ),
            given,
        )
        noisy_set = set(int(i) for i in noisy)
        clean_mask = result.split.clean
        print(
            json.dumps(
                {
                    "rows": len(gold),
                    "noise": noise,
                    "student": student,
                    "n_noisy": n_noisy,
                    "issues_listed": len(result.issues),
                    "flagged_share": round(len(result.issues) / len(gold), 4),
                    "negative_margin_issues": sum(1 for issue in result.issues if issue.margin <= 0),
                    "precision_at_noise_count": round(precision_at(result.issues, noisy_set, n_noisy), 4)
                    if n_noisy
                    else None,
                    "plain_confident_learning_precision_at_noise_count": round(
                        precision_at(plain, noisy_set, n_noisy), 4
                    )
                    if n_noisy
                    else None,
                    "freeal_noisy_share_of_flipped": round(float((~clean_mask[noisy]).mean()), 4)
                    if n_noisy
                    else None,
                    "freeal_clean_items": int(clean_mask.sum()),
                    "student_accuracy_vs_gold": round(
                        float((result.probabilities.argmax(axis=1) == gold).mean()), 4
                    ),
                    "seconds": {
                        "embed": round(embed_seconds, 2),
                        "refine": round(time.perf_counter() - started, 2),
                    },
                }
            )
        )
