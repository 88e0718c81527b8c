"""Benchmark: cold-start selection — train a classifier on the items each strategy picks; one JSON line.

    python manage.py bench_coldstart --data ../shared/data/sst2/train.txt --budgets 18,100
    python manage.py bench_coldstart --data ../shared/data/banking77/train.csv --budgets 18,100
    python manage.py bench_coldstart --data ../shared/data/banking77/train.csv --budgets 18 --batches 5 --batch-size 20

Reads `LABEL TEXT` lines (.txt, SST-2 style) or a CSV with a `text` column and a `category` or `label`
column. The test split defaults to test.txt / test.csv beside the data file. A random pool of --pool items
(default 3,000) is embedded with synthstudio.embeddings.encode (MiniLM; no database writes); random, k-means
and vote-k pick `budget` items; a logistic regression trained on their gold labels is scored on the test
split. Random is averaged over --seeds seeds.

With --batches B > 1 it also plays routing's batch loop: B batches of --batch-size picks each, every batch
choosing among the items not picked yet, once as routing did before (each batch restarts from scratch, blind
to the earlier picks) and once carrying the earlier picks (`already_selected`: vote-k discounts their
neighbours, k-means skips the clusters they hit). After each batch it reports, for the union of the picks:
`clusters` — the share of --reference-clusters k-means clusters of the pool (a separate clustering, seed 1)
holding at least one pick; `labels` — the share of gold labels seen; `distance` — the mean cosine distance
of a pool item to its nearest pick (lower = better covered); `accuracy` — the classifier's test accuracy.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.routing.selection import (
    VOTEK_K,
    VoteGraph,
    kmeans_select,
    random_select,
    votek_select,
)


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


def coverage_figures(
    picked: np.ndarray,
    *,
    unit_x: np.ndarray,
    reference: np.ndarray,
    pool_y: np.ndarray,
) -> dict[str, float]:
    """How well the picks so far cover the pool (see the module docstring); unit_x: L2-normalised rows."""
    clusters = int(reference.max()) + 1
    nearest = (unit_x @ unit_x[picked].T).max(axis=1)
    return {
        "clusters": round(float(np.unique(reference[picked]).size / clusters), 4),
        "labels": round(float(np.unique(pool_y[picked]).size / np.unique(pool_y).size), 4),
        "distance": round(float(np.mean(1.0 - nearest)), 4),
    }


def batch_loop(
    strategy: str, *, pool_x: np.ndarray, batches: int, batch_size: int, carry: bool, k: int
) -> list[np.ndarray]:
    """The picks so far after each batch: every batch picks among the items not picked yet, as routing's
    planner does, carrying the earlier picks into the selection or not."""
    n = len(pool_x)
    picked = np.zeros(0, dtype=np.int64)
    after_each: list[np.ndarray] = []
    for batch in range(batches):
        left = np.setdiff1d(np.arange(n), picked)
        rows = np.concatenate([left, picked]) if carry else left
        carried = np.arange(len(left), len(rows))
        vectors = pool_x[rows]
        if strategy == "kmeans":
            order = kmeans_select(vectors, batch_size, seed=batch, already_selected=carried)
        else:
            order = votek_select(vectors, batch_size, k=min(k, len(rows) - 1), already_selected=carried)
        picked = np.concatenate([picked, left[order]])
        after_each.append(picked)
    return after_each


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
        parser.add_argument("--k", type=int, default=VOTEK_K, help="vote-k graph degree")
        parser.add_argument(
            "--batches",
            type=int,
            default=1,
            help="above 1: also compare carrying earlier picks vs restarting",
        )
        parser.add_argument("--batch-size", type=int, default=20)
        parser.add_argument("--reference-clusters", type=int, default=100)

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
        batch_report: dict[str, object] = {}
        if options["batches"] > 1:
            batch_report = self.batch_comparison(pool_x, pool_y, test_x, test_y, options)
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
                    **({"batches": batch_report} if batch_report else {}),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
        )

    def batch_comparison(
        self,
        pool_x: np.ndarray,
        pool_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        options: dict,
    ) -> dict:
        """Per strategy, per batch: coverage and accuracy of the picks so far, restarting vs carrying; random
        (the union of B · batch-size random picks, averaged over --seeds) as the floor."""
        from annotation.routing.selection import kmeans_fit

        batches, batch_size = options["batches"], options["batch_size"]
        if batches * batch_size >= len(pool_x):
            raise CommandError("--batches × --batch-size must be smaller than --pool")
        unit_x = pool_x / np.maximum(np.linalg.norm(pool_x, axis=1, keepdims=True), 1e-12)
        reference, _ = kmeans_fit(
            np.asarray(pool_x, dtype=np.float32), min(options["reference_clusters"], len(pool_x)), 1
        )

        def figures(picked: np.ndarray) -> dict[str, float]:
            accuracy = heldout_accuracy(pool_x[picked], pool_y[picked], test_x, test_y)
            return {
                **coverage_figures(picked, unit_x=unit_x, reference=reference, pool_y=pool_y),
                "accuracy": round(accuracy, 4),
            }

        report: dict[str, object] = {
            "batch_size": batch_size,
            "reference_clusters": int(reference.max()) + 1,
        }
        random_rows = []
        for batch in range(1, batches + 1):
            per_seed = [
                figures(random_select(len(pool_x), batch * batch_size, seed=seed))
                for seed in range(options["seeds"])
            ]
            random_rows.append(
                {key: round(float(np.mean([row[key] for row in per_seed])), 4) for key in per_seed[0]}
            )
        report["random"] = random_rows
        for strategy in ("kmeans", "votek"):
            report[strategy] = {
                mode: [
                    figures(picked)
                    for picked in batch_loop(
                        strategy,
                        pool_x=pool_x,
                        batches=batches,
                        batch_size=batch_size,
                        carry=mode == "carry",
                        k=options["k"],
                    )
                ]
                for mode in ("restart", "carry")
            }
        return report
