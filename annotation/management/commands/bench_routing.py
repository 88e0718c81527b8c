"""Routing benchmark: how many of the LLM's errors each strategy lets humans catch within a budget.

    python manage.py bench_routing --data ../shared/data/routing/stance.csv --budgets 0.1,0.2,0.3 \\
        --strategies random,least_confidence,margin,entropy,learned

Reads the routing format (text, gold, llm_label, llm_confidence, llm_probs), and for each strategy imports it
into a fresh project in a throwaway database, computes embeddings (cached per text: the main database's
cache is reused and filled, so the second run embeds nothing) and signals, routes in batches of 5% of the
data, answers every routed item with `gold` through annotation.review.answers.review_answer_submit (the path a
human's answer takes, whose routing_after_answer hook queues the next batch; Celery runs eagerly here), and
records the final label accuracy at each budget. Prints one JSON line:

    {"data", "n", "llm_accuracy", "results": [{"strategy", "budget", "final_accuracy", "error_capture",
     "oracle_accuracy"}, ...], "seconds"}

error_capture = (final − LLM) / (oracle − LLM), oracle = humans see exactly the items the LLM got wrong.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from synthstudio import celery_app
from synthstudio.benchmarking import throwaway_database
from synthstudio.models import Embedding, Membership, Role, Sample

STRATEGIES = (
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "kmeans",
    "votek",
    "votek_two_stage",
    "coannotating",
    "learned",
)


def read_routing_csv(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if not (row.get("text") or "").strip() or not (row.get("gold") or "").strip():
                raise CommandError(f"{path}:{line}: a row needs text and gold")
            probs = (row.get("llm_probs") or "").strip()
            try:
                distribution = json.loads(probs) if probs else None
            except json.JSONDecodeError as error:
                raise CommandError(f"{path}:{line}: llm_probs is not JSON: {error}") from None
            confidence = (row.get("llm_confidence") or "").strip()
            rows.append(
                {
                    "text": row["text"],
                    "gold": row["gold"].strip(),
                    "label": (row.get("llm_label") or "").strip(),
                    "confidence": float(confidence) if confidence else None,
                    "distribution": distribution,
                }
            )
    if not rows:
        raise CommandError(f"{path} holds no rows")
    return rows


def label_set(rows: list[dict]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.setdefault(row["gold"])
        if row["label"]:
            names.setdefault(row["label"])
        for name in row["distribution"] or {}:
            names.setdefault(name)
    return list(names)


def embedding_file_cache() -> Path:
    """Embeddings outlive the throwaway database in a file under var/ (hash → float32 vector per model)."""
    name = settings.EMBEDDING_MODEL.replace("/", "_")
    return Path(settings.VAR_DIR) / "bench-cache" / f"embeddings-{name}.npz"


def embeddings_restore() -> int:
    """Load the file cache into the (throwaway) database's embedding cache; returns how many."""
    path = embedding_file_cache()
    if not path.exists():
        return 0
    stored = np.load(path)
    hashes, vectors = stored["hashes"], stored["vectors"]
    Embedding.objects.bulk_create(
        [
            Embedding(
                model_name=settings.EMBEDDING_MODEL,
                text_hash=str(h),
                dim=vectors.shape[1],
                vector=v.astype("<f4").tobytes(),
            )
            for h, v in zip(hashes, vectors, strict=True)
        ],
        batch_size=500,
        ignore_conflicts=True,
    )
    return len(hashes)


def embeddings_save() -> None:
    rows = list(
        Embedding.objects.filter(model_name=settings.EMBEDDING_MODEL).values_list("text_hash", "vector")
    )
    if not rows:
        return
    path = embedding_file_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    hashes = np.array([h for h, _ in rows])
    vectors = np.stack([np.frombuffer(bytes(v), dtype="<f4") for _, v in rows])
    np.savez(path.with_suffix(".tmp.npz"), hashes=hashes, vectors=vectors)
    path.with_suffix(".tmp.npz").replace(path)


class Command(BaseCommand):
    help = "Measure error capture of routing strategies on a routing-format CSV (one JSON line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--data", required=True, help="CSV in the routing format (../shared/data/README.md)"
        )
        parser.add_argument(
            "--budgets", default="0.1,0.2,0.3", help="human budgets as shares, comma-separated"
        )
        parser.add_argument("--strategies", default="random,least_confidence,margin,entropy,learned")
        parser.add_argument(
            "--batch-share", type=float, default=0.05, help="batch size as a share of the data"
        )
        parser.add_argument(
            "--current-database",
            action="store_true",
            help="run in the configured database instead of a throwaway one (the tests use this)",
        )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        path = Path(options["data"])
        if not path.exists():
            raise CommandError(f"No such file: {path}")
        budgets = sorted(float(b) for b in options["budgets"].split(",") if b.strip())
        strategies = [s.strip() for s in options["strategies"].split(",") if s.strip()]
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown or not budgets or not all(0 < b <= 1 for b in budgets):
            raise CommandError(f"Strategies must be among {', '.join(STRATEGIES)}; budgets in (0, 1].")
        rows = read_routing_csv(path)

        celery_app.conf.task_always_eager = True  # nothing may land on the real broker
        settings.CELERY_TASK_ALWAYS_EAGER = True
        if options["current_database"]:
            measured = self.run_all(rows, strategies, budgets, options["batch_share"], file_cache=False)
        else:
            with throwaway_database():
                measured = self.run_all(rows, strategies, budgets, options["batch_share"], file_cache=True)
        self.stdout.write(
            json.dumps(
                {
                    "data": str(path),
                    "n": measured["n"],
                    "llm_accuracy": round(measured["llm_accuracy"], 4),
                    "results": measured["results"],
                    "embeddings_computed": measured["embeddings_computed"],
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )

    def run_all(
        self,
        rows: list[dict],
        strategies: list[str],
        budgets: list[float],
        batch_share: float,
        *,
        file_cache: bool,
    ) -> dict:
        restored = embeddings_restore() if file_cache else 0
        before = Embedding.objects.count()
        results: list[dict] = []
        measured: dict = {}
        signals_source = None
        for strategy in strategies:
            measured = self.run_strategy(rows, strategy, budgets, batch_share, signals_source)
            signals_source = measured["samples"]
            results += measured["results"]
        computed = Embedding.objects.count() - before
        if computed and file_cache:
            embeddings_save()
        return {
            "n": measured["n"],
            "llm_accuracy": measured["llm_accuracy"],
            "results": results,
            "embeddings_computed": computed,
            "embeddings_restored": restored,
        }

    def run_strategy(
        self, rows: list[dict], strategy: str, budgets: list[float], batch_share: float, signals_source
    ) -> dict:
        from annotation.labelling.services import llm_annotations_import
        from annotation.review.answers import review_answer_submit
        from annotation.review.queue import review_next
        from annotation.routing.services import routing_policy_for, routing_route_next_batch
        from annotation.routing.signals import signals_refresh
        from synthstudio.services import codebook_create_version, project_create

        users = get_user_model().objects
        lead, _ = users.get_or_create(username="bench-lead")
        annotator, _ = users.get_or_create(username="bench-annotator")
        project = project_create(name=f"bench routing {strategy}", user=lead)
        Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
        codebook_create_version(
            project=project,
            user=lead,
            task_description="Routing benchmark.",
            guidelines="",
            labels=[{"name": name} for name in label_set(rows)],
        )
        samples = llm_annotations_import(project=project, rows=rows)
        gold = {sample.pk: row["gold"] for sample, row in zip(samples, rows, strict=True)}
        n = len(samples)
        llm_correct = sum(1 for row in rows if row["label"] == row["gold"])
        llm_accuracy = llm_correct / n
        if signals_source is None:
            signals_refresh(project=project)
        else:  # the same rows in the same order: reuse the first project's signals (the student fit is slow)
            copy_signals(signals_source, samples)

        policy = routing_policy_for(project=project)
        policy.strategy = strategy
        policy.budget_kind = "count"
        policy.batch_size = max(1, math.ceil(batch_share * n))
        policy.annotators_per_item = 1
        policy.cold_start_size = 0
        policy.is_active = True
        results = []
        for budget in budgets:
            policy.budget_count = int(round(budget * n))
            policy.save()
            routed = routing_route_next_batch(project=project)
            while routed:
                while (assignment := review_next(project=project, annotator=annotator)) is not None:
                    # the answer's on-commit hook queues the next batch once this one is answered (and
                    # Celery runs eagerly here, so the batch is routed before the next review_next)
                    review_answer_submit(assignment=assignment, label=gold[assignment.task.sample_id])
                # where on-commit hooks do not fire (inside a test's transaction) what the queued task runs
                routed = routing_route_next_batch(project=project, only_when_answered=True)
            final = Sample.objects.filter(project=project).values_list("pk", "final_label")
            final_accuracy = float(np.mean([label == gold[pk] for pk, label in final]))
            oracle = (llm_correct + min(policy.budget_count, n - llm_correct)) / n
            capture = (
                (final_accuracy - llm_accuracy) / (oracle - llm_accuracy) if oracle > llm_accuracy else 0.0
            )
            results.append(
                {
                    "strategy": strategy,
                    "budget": budget,
                    "final_accuracy": round(final_accuracy, 4),
                    "error_capture": round(capture, 4),
                    "oracle_accuracy": round(oracle, 4),
                    "routed": project.review_tasks.count(),
                }
            )
        return {"n": n, "llm_accuracy": llm_accuracy, "results": results, "samples": samples}


def copy_signals(source: list[Sample], target: list[Sample]) -> None:
    from annotation.models import SampleSignals

    by_sample = {
        row.sample_id: row for row in SampleSignals.objects.filter(sample__in=[s.pk for s in source])
    }
    fields = [
        "llm_label",
        "least_confidence",
        "margin",
        "entropy",
        "student_probability",
        "student_label",
        "knn_agreement",
    ]
    SampleSignals.objects.bulk_create(
        [
            SampleSignals(sample=new, **{name: getattr(by_sample[old.pk], name) for name in fields})
            for old, new in zip(source, target, strict=True)
            if old.pk in by_sample
        ],
        batch_size=500,
    )
