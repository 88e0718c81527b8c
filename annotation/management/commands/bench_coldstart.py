"""Benchmark: cold-start selection — train a classifier on the items each strategy picks; one JSON line.

    python manage.py bench_coldstart --data ../shared/data/sst2/train.txt --budgets 18,100
    python manage.py bench_coldstart --data ../shared/data/banking77/train.csv --budgets 18,100

Reads `LABEL TEXT` lines (.txt, SST-2 style) or a CSV with a `text` column and a `category` or `label`
column. The test split defaults to test.txt / test.csv beside the data file. A random pool of --pool items
(default 3,000) is embedded with synthstudio.embeddings.encode (MiniLM; no database writes); random, k-means
and vote-k pick `budget` items; a logistic regression trained on their gold labels is scored on the test
split. Random is averaged over --seeds seeds.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.routing.selection import VoteGraph, kmeans_select, random_select, votek_select


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    if not path.exists():
        raise CommandError(f"{path} does not exist")
    if path.suffix == ".txt":
        texts, labels = [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                label, _, text = line.partition(" ")
                labels.append(label)
                texts.append(text)
        return texts, labels
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "text" not in rows[0]:
        raise CommandError(f"{path} needs a `text` column")
    label_column = next((c for c in ("category", "label", "gold") if c in rows[0]), None)
    if label_column is None:
        raise CommandError(f"{path} needs a `category`, `label` or `gold` column")
    return [r["text"] for r in rows], [r[label_column] for r in rows]


def heldout_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(train_y)
    if classes.size == 1:
        return float(np.mean(test_y == classes[0]))
    model = LogisticRegression(max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "more classes than half the samples" is the point at budget 18
        model.fit(train_x, train_y)
    return float(np.mean(model.predict(test_x) == test_y))


class Command(BaseCommand):
    help = (
        "Test accuracy of a classifier trained on items picked by random, k-means and vote-k (one JSON line)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, help="training file (.txt LABEL TEXT, or .csv)")
        parser.add_argument("--test", help="test file; default test.txt/test.csv beside --data")
        parser.add_argument("--budgets", default="18,100")
        parser.add_argument("--pool", type=int, default=3000)
        parser.add_argument(
            "--seeds", type=int, default=5, help="random selection is averaged over this many"
        )
        parser.add_argument("--k", type=int, default=150, help="vote-k graph degree")

    def handle(self, *args, **options) -> None:
        from synthstudio.embeddings import encode

        started = time.perf_counter()
        data = Path(options["data"])
        test = Path(options["test"]) if options["test"] else data.with_name(f"test{data.suffix}")
        try:
            budgets = [int(b) for b in options["budgets"].split(",") if b.strip()]
        except ValueError:
            raise CommandError("--budgets must be comma-separated integers, e.g. 18,100") from None
        texts, labels = read_labelled(data)
        test_texts, test_labels = read_labelled(test)
        pool = np.sort(random_select(len(texts), options["pool"], seed=0))
        pool_x = encode([texts[i] for i in pool])
        pool_y = np.asarray([labels[i] for i in pool])
        test_x = encode(test_texts)
        test_y = np.asarray(test_labels)
        graph = VoteGraph.from_embeddings(pool_x, k=options["k"])

        results: dict[str, dict] = {}
        for budget in budgets:
            random_scores = [
                heldout_accuracy(pool_x[picked], pool_y[picked], test_x, test_y)
                for picked in (
                    random_select(len(pool), budget, seed=seed) for seed in range(options["seeds"])
                )
            ]
            kmeans_picked = kmeans_select(pool_x, budget, seed=0)
            votek_picked = votek_select(pool_x, budget, graph=graph)
            results[str(budget)] = {
                "random": round(float(np.mean(random_scores)), 4),
                "random_std": round(float(np.std(random_scores)), 4),
                "kmeans": round(
                    heldout_accuracy(pool_x[kmeans_picked], pool_y[kmeans_picked], test_x, test_y), 4
                ),
                "votek": round(
                    heldout_accuracy(pool_x[votek_picked], pool_y[votek_picked], test_x, test_y), 4
                ),
            }
        self.stdout.write(
            json.dumps(
                {
                    "data": str(data),
                    "test": str(test),
                    "pool": int(len(pool)),
                    "test_n": int(len(test_y)),
                    "classes": int(np.unique(pool_y).size),
                    "random_seeds": options["seeds"],
                    "results": results,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
        )
