"""Benchmark sample weights in the downstream benchmark on data with injected LLM-label noise; one JSON line.

    python manage.py bench_weights --data ../shared/data/sst2/train.txt --test ../shared/data/sst2/test.txt

Reads "<label> <text>" lines: --rows training rows (seeded sample), of which --human carry their true label
(the human-verified items) and the rest an "LLM" label flipped with probability --noise; --test-rows rows of
--test are the held-out human test set. Trains the downstream classifiers (evaluation.benchmark.downstream) on
the LLM + human labels unweighted, weighted by held_out_loss_weights learned against the human items, and on
the human items alone, and reports accuracy and macro F1 of each side by side.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from evaluation.benchmark.downstream import benchmark_training_set, held_out_loss_weights
from synthstudio.embeddings import encode


def _read(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        raise CommandError(f"No such file: {path}")
    return [
        (label, text)
        for label, text in (
            line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines() if " " in line
        )
    ]


class Command(BaseCommand):
    help = "Downstream accuracy with learned sample weights vs unweighted vs human-only, on noisy labels."

    def add_arguments(self, parser):
        parser.add_argument(
            "--data", required=True, help='Training "<label> <text>" lines (SST-2 train.txt).'
        )
        parser.add_argument("--test", required=True, help='Held-out "<label> <text>" lines (SST-2 test.txt).')
        parser.add_argument("--rows", type=int, default=2000)
        parser.add_argument("--human", type=int, default=200, help="Training rows with their true label.")
        parser.add_argument("--noise", type=float, default=0.3, help="Share of LLM labels flipped.")
        parser.add_argument("--test-rows", type=int, default=800)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, data, test, rows, human, noise, test_rows, seed, **options):
        if not 0 <= noise < 1:
            raise CommandError("--noise must be at least 0 and below 1.")
        if not 0 < human < rows:
            raise CommandError("--human must be between 1 and --rows - 1.")
        pairs, test_pairs = _read(Path(data)), _read(Path(test))
        rng = np.random.default_rng(seed)
        chosen = [pairs[i] for i in rng.choice(len(pairs), size=min(rows, len(pairs)), replace=False)]
        held = [
            test_pairs[i]
            for i in rng.choice(len(test_pairs), size=min(test_rows, len(test_pairs)), replace=False)
        ]
        names = sorted({label for label, _ in chosen})
        texts = [text for _, text in chosen]
        truth = [label for label, _ in chosen]
        is_human = np.zeros(len(chosen), dtype=bool)
        is_human[rng.choice(len(chosen), size=human, replace=False)] = True
        given = []
        for label, verified in zip(truth, is_human, strict=True):
            if not verified and rng.random() < noise:
                label = names[(names.index(label) + int(rng.integers(1, len(names)))) % len(names)]
            given.append(label)
        started = time.perf_counter()
        vectors = encode(texts)
        test_texts, test_labels = [t for _, t in held], [label for label, _ in held]
        test_vectors = encode(test_texts)
        embed_seconds = time.perf_counter() - started
        learned = held_out_loss_weights(
            train_vectors=vectors[~is_human],
            train_labels=[g for g, h in zip(given, is_human, strict=True) if not h],
            validation_vectors=vectors[is_human],
            validation_labels=[g for g, h in zip(given, is_human, strict=True) if h],
        )
        weights = np.ones(len(given))
        weights[~is_human] = learned  # human-verified items keep weight 1
        flipped = np.array([g != t for g, t in zip(given, truth, strict=True)])
        common = {"test_texts": test_texts, "test_labels": test_labels, "test_vectors": test_vectors}
        human_index = np.flatnonzero(is_human)
        results = {}
        for name, index, weight in [
            ("unweighted", np.arange(len(given)), None),
            ("learned_weights", np.arange(len(given)), weights),
            ("human_only", human_index, None),
        ]:
            for row in benchmark_training_set(
                name=name,
                train_texts=[texts[i] for i in index],
                train_labels=[given[i] for i in index],
                train_vectors=vectors[index],
                sample_weight=weight,
                **common,
            ):
                results[f"{name} · {row.model}"] = {
                    "accuracy": round(row.accuracy, 4),
                    "macro_f1": round(row.macro_f1, 4),
                    "n_train": row.n_train,
                }
        print(
            json.dumps(
                {
                    "rows": len(given),
                    "human": int(is_human.sum()),
                    "noise": noise,
                    "flipped": int(flipped.sum()),
                    "test_rows": len(test_labels),
                    "mean_weight_flipped": round(float(weights[flipped].mean()), 3)
                    if flipped.any()
                    else None,
                    "mean_weight_correct_llm": round(float(weights[~flipped & ~is_human].mean()), 3),
                    "results": results,
                    "seconds": {"embed": round(embed_seconds, 1)},
                }
            )
        )
