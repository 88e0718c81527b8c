"""Downstream benchmark workflows: start a run, assemble its training sets and held-out test set, train and
score in a worker, and find the latest finished run.

The training and scoring itself is the pure core evaluation.benchmark.downstream; this module loads rows,
calls it and stores the results on the BenchmarkRun.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from evaluation.benchmark.downstream import benchmark_training_set, held_out_loss_weights, split_held_out
from evaluation.models import BenchmarkRun, Snapshot
from evaluation.tasks import benchmark_run_task
from synthstudio.jobs import enqueue, failure_text
from synthstudio.models import HUMAN_VERIFIED_SOURCES, JobStatus, LLMAnnotation, Project, Sample

TRAINING_SETS = {
    "llm": "Raw LLM labels",
    "final": "Curated final labels",
    "human": "Human-verified only",
}


def benchmark_start(
    *,
    project: Project,
    user: AbstractBaseUser,
    test_fraction: float = 0.3,
    seed: int = 0,
    test_rows: list[dict] | None = None,
    test_file_name: str = "",
) -> BenchmarkRun:
    with transaction.atomic():
        run = BenchmarkRun.objects.create(
            project=project, created_by=user, test_source="file" if test_rows else "split",
            test_fraction=test_fraction, seed=seed, test_rows=test_rows or [], test_file_name=test_file_name,
        )  # fmt: skip
        enqueue(benchmark_run_task, run.id)
    return run


def benchmark_sets(
    *, run: BenchmarkRun
) -> tuple[list[tuple[str, list[str], list[str]]], list[str], list[str]]:
    """(training sets [(name, texts, labels)], test texts, test labels). Test items never appear in training."""
    sets, test_texts, test_labels, _, _ = _benchmark_sets_and_rule_weights(run=run)
    return sets, test_texts, test_labels


def _benchmark_sets_and_rule_weights(
    *, run: BenchmarkRun
) -> tuple[
    list[tuple[str, list[str], list[str]]],
    list[str],
    list[str],
    list[float],
    dict[str, tuple[str, list[float]]],
]:
    """benchmark_sets, plus the final-label rule's weight of each item of the curated final-label set, and per
    snapshot set its weighting method (the project's option when it was made: rule or learned) and weights."""
    project = run.project
    samples = list(
        Sample.objects.filter(project=project).values_list(
            "id", "text", "final_label", "final_source", "final_weight"
        )
    )
    llm_label = dict(
        LLMAnnotation.objects.filter(sample__project=project, is_current=True, valid=True)
        .exclude(label="")
        .order_by("sample_id", "id")
        .values_list("sample_id", "label")
    )
    human = [s for s in samples if s[3] in HUMAN_VERIFIED_SOURCES and s[2]]
    if run.test_source == "file":
        test_texts = [str(r["text"]) for r in run.test_rows]
        test_labels = [str(r["label"]) for r in run.test_rows]
        held_out: set[int] = set()
        held_out_texts = set(test_texts)
    else:
        held_out = split_held_out([s[0] for s in human], fraction=run.test_fraction, seed=run.seed)
        test = [s for s in human if s[0] in held_out]
        test_texts, test_labels = [s[1] for s in test], [s[2] for s in test]
        held_out_texts = set()

    def keep(sample_id: int, text: str) -> bool:
        return sample_id not in held_out and text not in held_out_texts

    final = [s for s in samples if s[2] and keep(s[0], s[1])]

    sets = [
        (
            TRAINING_SETS["llm"],
            *_columns((s[1], llm_label[s[0]]) for s in samples if s[0] in llm_label and keep(s[0], s[1])),
        ),
        (TRAINING_SETS["final"], *_columns((s[1], s[2]) for s in final)),
        (TRAINING_SETS["human"], *_columns((s[1], s[2]) for s in human if keep(s[0], s[1]))),
    ]
    snapshot_weights: dict[str, tuple[str, list[float]]] = {}
    for snapshot in Snapshot.objects.ready().filter(project=project).order_by("-version")[:3]:
        rows = [
            row
            for row in snapshot.items.order_by("id").values_list("sample_ref", "text", "label", "weight")
            if row[2] and keep(row[0], row[1])
        ]
        name = f"Snapshot v{snapshot.version}"
        sets.append((name, *_columns((t, lab) for _, t, lab, _ in rows)))
        method = ((snapshot.stats or {}).get("weights") or {}).get("method") or "rule"
        snapshot_weights[name] = (method, [float(w) for *_, w in rows])
    return sets, test_texts, test_labels, [float(s[4]) for s in final], snapshot_weights


def _columns(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    pairs = list(pairs)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def benchmark_run(*, run: BenchmarkRun) -> BenchmarkRun:
    from synthstudio.embeddings import embed_texts

    run.mark_running()
    try:
        sets, test_texts, test_labels, rule_weights, snapshot_weights = _benchmark_sets_and_rule_weights(
            run=run
        )
        run.report_progress(total=len(sets), done=0)
        test_vectors = embed_texts(test_texts) if test_texts else None
        human_texts, human_labels = next(
            (texts, labels) for name, texts, labels in sets if name == TRAINING_SETS["human"]
        )
        results = []
        for index, (name, texts, labels) in enumerate(sets, start=1):
            vectors = embed_texts(texts) if texts else None
            scores = benchmark_training_set(
                name=name, train_texts=texts, train_labels=labels, train_vectors=vectors,
                test_texts=test_texts, test_labels=test_labels, test_vectors=test_vectors,
            )  # fmt: skip
            if name == TRAINING_SETS["final"] and texts and test_texts:
                scores += _weighted_scores(
                    name, texts, labels, vectors, rule_weights, human_texts, human_labels,
                    test_texts, test_labels, test_vectors,
                )  # fmt: skip
            # a snapshot trains with its own weights too (the project's option when it was made)
            if name in snapshot_weights and texts and test_texts:
                method, weights = snapshot_weights[name]
                scores += benchmark_training_set(
                    name=f"{name} · weighted ({method})", train_texts=texts, train_labels=labels,
                    train_vectors=vectors, test_texts=test_texts, test_labels=test_labels,
                    test_vectors=test_vectors, sample_weight=weights,
                )  # fmt: skip
            results.extend(score.as_dict() for score in scores)
            run.results = results
            run.save(update_fields=["results"])
            run.report_progress(done=index)
    except Exception as error:
        run.mark_finished(JobStatus.FAILED, error=failure_text(error))
        raise
    run.mark_finished(JobStatus.SUCCEEDED, message=f"Tested on {len(test_labels)} human-labelled items.")
    return run


def _weighted_scores(
    name,
    texts,
    labels,
    vectors,
    rule_weights,
    human_texts,
    human_labels,
    test_texts,
    test_labels,
    test_vectors,
) -> list:
    """The curated set again, weighted by the final-label rule and by weights learned against the
    human-verified training items (held_out_loss_weights; a human-verified item keeps weight 1)."""
    from synthstudio.embeddings import embed_texts

    human_pairs = set(zip(human_texts, human_labels, strict=True))
    learned = np.ones(len(labels))
    if human_texts:
        others = [i for i, pair in enumerate(zip(texts, labels, strict=True)) if pair not in human_pairs]
        learned[others] = held_out_loss_weights(
            train_vectors=vectors[others],
            train_labels=[labels[i] for i in others],
            validation_vectors=embed_texts(human_texts),
            validation_labels=human_labels,
        )
    scores = []
    for weights_name, weights in (("rule", rule_weights), ("learned", learned.tolist())):
        scores += benchmark_training_set(
            name=f"{name} · weighted ({weights_name})", train_texts=texts, train_labels=labels,
            train_vectors=vectors, test_texts=test_texts, test_labels=test_labels, test_vectors=test_vectors,
            sample_weight=weights,
        )  # fmt: skip
    return scores


def latest_benchmark(*, project: Project) -> BenchmarkRun | None:
    return (
        BenchmarkRun.objects.filter(project=project, status=JobStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
