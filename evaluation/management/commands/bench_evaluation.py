"""Benchmark the evaluation metrics on synthetic data: prints one JSON line.

    python manage.py bench_evaluation --n 100000
    python manage.py bench_evaluation --n 100000 --dashboard   # also time the dashboard pages at that size

The data are synthetic and need no model: texts are random words from a vocabulary (with class-specific
words so the downstream classifiers have something to learn), embeddings are random vectors around a
class centre, and three raters plus an LLM label every item (each right with a fixed probability, one
rater missing a share of items). With --dashboard, n samples and their labels are written to the database
inside a transaction that is rolled back, the cached numbers are stored, and each dashboard page is
fetched as a lead; the seconds per page are reported.
"""

from __future__ import annotations

import json
import time

import numpy as np
from django.core.management.base import BaseCommand

from evaluation.benchmark.downstream import benchmark_training_set
from evaluation.dashboards import metrics

DIMENSIONS = 384
LABELS = ["world", "sports", "business", "science"]


def synthetic_corpus(
    n: int, *, seed: int = 0, vocabulary: int = 5000
) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocabulary)])
    label_index = rng.integers(0, len(LABELS), n)
    lengths = rng.integers(8, 30, n)
    # 20% of each text's words come from its class's own 200-word slice of the vocabulary
    common = rng.integers(0, vocabulary, lengths.sum())
    own = rng.integers(0, 200, lengths.sum()) + np.repeat(label_index, lengths) * 200
    use_own = rng.random(lengths.sum()) < 0.2
    tokens = words[np.where(use_own, own, common)]
    texts, start = [], 0
    for length in lengths:
        texts.append(" ".join(tokens[start : start + length]))
        start += length
    centres = rng.normal(size=(len(LABELS), DIMENSIONS)).astype(np.float32)
    vectors = rng.normal(size=(n, DIMENSIONS)).astype(np.float32) + 0.12 * centres[label_index]
    return texts, [LABELS[i] for i in label_index], vectors


def noisy_rater(truth: list[str], *, accuracy: float, rng: np.random.Generator) -> list[str]:
    wrong = rng.random(len(truth)) > accuracy
    other = rng.integers(0, len(LABELS), len(truth))
    return [LABELS[o] if w else t for t, w, o in zip(truth, wrong, other, strict=True)]


class Command(BaseCommand):
    help = "Time the diversity metrics, agreement and the downstream benchmark on synthetic data (one JSON line)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--n", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--dashboard", action="store_true", help="Also time the dashboard pages at this size."
        )

    def handle(self, *args, n: int, seed: int, dashboard: bool, **options) -> None:
        result: dict = {
            "n": n,
            "data": "synthetic: random words from a 5,000-word vocabulary, random 384-d vectors as embeddings (no model)",
        }
        started = time.perf_counter()
        texts, truth, vectors = synthetic_corpus(n, seed=seed)
        result["generate_seconds"] = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        diversity = metrics.diversity_summary(
            texts, vectors, self_bleu_sample=200, vendi_sample=500, near_duplicate_sample=2000, seed=seed
        )
        result["diversity_seconds"] = round(time.perf_counter() - started, 3)
        result["diversity"] = {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in diversity.items()
            if not k.startswith("top_")
        }

        rng = np.random.default_rng(seed + 1)
        raters = [noisy_rater(truth, accuracy=a, rng=rng) for a in (0.9, 0.85, 0.8)]
        llm = noisy_rater(truth, accuracy=0.75, rng=rng)
        missing = rng.random(n) < 0.3  # the third rater skipped 30% of items: Krippendorff handles it
        started = time.perf_counter()
        kappas = [metrics.cohen_kappa(raters[i], raters[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
        fleiss = metrics.fleiss_kappa(metrics.category_counts(list(zip(*raters, strict=True)), LABELS))
        alpha = metrics.krippendorff_alpha_nominal(
            [(a, b, None if m else c) for a, b, c, m in zip(*raters, missing, strict=True)]
        )
        human_llm = metrics.cohen_kappa(raters[0], llm)
        per_label = metrics.per_label_scores(metrics.confusion_matrix(raters[0], llm, LABELS), LABELS)
        result["agreement_seconds"] = round(time.perf_counter() - started, 3)
        result["agreement"] = {
            "cohen_pairs": [round(k, 4) for k in kappas], "fleiss": round(fleiss, 4), "krippendorff_with_missing": round(alpha, 4),
            "human_llm_kappa": round(human_llm, 4), "llm_macro_f1": round(float(np.mean([s.f1 for s in per_label])), 4),
        }  # fmt: skip

        split = int(n * 0.8)
        started = time.perf_counter()
        scores = benchmark_training_set(
            name="synthetic", train_texts=texts[:split], train_labels=llm[:split], train_vectors=vectors[:split],
            test_texts=texts[split:], test_labels=truth[split:], test_vectors=vectors[split:],
        )  # fmt: skip
        result["downstream_seconds"] = round(time.perf_counter() - started, 3)
        result["downstream"] = [
            {
                "model": s.model,
                "n_train": s.n_train,
                "n_test": s.n_test,
                "accuracy": round(s.accuracy, 4),
                "macro_f1": round(s.macro_f1, 4),
            }
            for s in scores
        ]
        if dashboard:
            result["dashboard"] = self.time_dashboards(texts, truth, llm, raters, diversity)
        self.stdout.write(json.dumps(result))

    def time_dashboards(self, texts, truth, llm, raters, diversity) -> dict:
        from django.contrib.auth import get_user_model
        from django.db import transaction
        from django.test import Client

        from evaluation.dashboards import services as metrics_services
        from evaluation.models import MetricsCache
        from synthstudio.models import HumanAnnotation, LabelMethod, LLMAnnotation, Sample
        from synthstudio.services import codebook_create_version, project_create

        timings: dict = {}
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=f"bench-lead-{time.time_ns()}")
            project = project_create(name="bench_evaluation (rolled back)", user=user)
            codebook_create_version(
                project=project,
                user=user,
                task_description="bench",
                guidelines="",
                labels=[{"name": n} for n in LABELS],
            )
            started = time.perf_counter()
            Sample.objects.bulk_create(
                (Sample(project=project, text=t, text_hash=str(i), final_label=label, final_source="llm")
                 for i, (t, label) in enumerate(zip(texts, llm, strict=True))), batch_size=5000,
            )  # fmt: skip
            ids = list(Sample.objects.filter(project=project).order_by("id").values_list("id", flat=True))
            LLMAnnotation.objects.bulk_create(
                (LLMAnnotation(sample_id=i, label=label, distribution={label: 0.8}, confidence=0.8, method=LabelMethod.IMPORTED)
                 for i, label in zip(ids, llm, strict=True)), batch_size=5000,
            )  # fmt: skip
            reviewed = ids[: len(ids) // 10]
            HumanAnnotation.objects.bulk_create(
                (HumanAnnotation(sample_id=i, annotator=user, label=label, rating="A" if label == t else "C")
                 for i, label, t in zip(reviewed, raters[0], truth, strict=False)), batch_size=5000,
            )  # fmt: skip
            timings["insert_seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            payload = metrics_services.dashboard_payload(project=project, with_diversity=False)
            payload["diversity"] = [{"group": "all samples (random vectors)", **diversity}]
            MetricsCache.objects.create(
                project=project,
                data_version=metrics_services.metrics_data_version(project=project),
                payload=payload,
            )
            timings["compute_seconds_without_embeddings"] = round(time.perf_counter() - started, 3)
            client = Client()
            client.force_login(user)
            for page in ("", "agreement/", "diversity/", "benchmark/", "preferences/"):
                name = page.rstrip("/") or "overview"
                # the first request also compiles templates and imports view modules; the second is the steady state
                for key in (f"first_render_seconds_{name}", f"render_seconds_{name}"):
                    started = time.perf_counter()
                    response = client.get(f"/projects/{project.id}/evaluation/{page}", HTTP_HOST="127.0.0.1")
                    timings[key] = round(time.perf_counter() - started, 3)
                timings.setdefault("status_codes", []).append(response.status_code)
            transaction.set_rollback(True)
        return timings
