"""Dashboard workflows: the numbers the evaluation dashboards show (label distribution, confidence,
faithfulness, agreement, annotator statistics, diversity, and the pairwise leaderboards from
evaluation.preferences.services), computed in a worker and cached per data version.

The pure maths lives in evaluation.dashboards.metrics; this module loads rows, calls it, stores results.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from datetime import datetime

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from evaluation.dashboards import metrics
from evaluation.models import MetricsCache, MetricsRefresh, PairwiseJudgment, Snapshot
from evaluation.preferences.services import pairwise_summary
from evaluation.tasks import metrics_refresh_task
from synthstudio.jobs import enqueue
from synthstudio.models import (
    HUMAN_VERIFIED_SOURCES,
    FlagReason,
    HumanAnnotation,
    HumanSource,
    JobStatus,
    LLMAnnotation,
    Project,
    Sample,
)

ACCEPTABLE_RATINGS = {"A", "B"}
UNFAITHFUL_FLAGS = {FlagReason.UNFAITHFUL, FlagReason.HARMFUL, FlagReason.OFF_TOPIC}
EMBEDDING_SAMPLE = 2000  # texts per diversity group that get embedded (the embedding model is the slow part)
SELF_BLEU_SAMPLE = 200
VENDI_SAMPLE = 500
MAX_DIVERSITY_GROUPS = 10

# ---------------------------------------------------------------- data version and cache


def metrics_data_version(*, project: Project) -> str:
    """A hash of counts, max ids and newest timestamps of everything the dashboards read: changes whenever
    a sample, label, answer, judgment, judge run or benchmark run is added or edited."""
    parts = [
        Sample.objects.filter(project=project).aggregate(
            n=Count("id"), last=Max("id"), final=Count("id", filter=~Q(final_source=""))
        ),
        LLMAnnotation.objects.filter(sample__project=project).aggregate(n=Count("id"), last=Max("id")),
        HumanAnnotation.objects.filter(sample__project=project).aggregate(
            n=Count("id"), last=Max("updated_at")
        ),
        PairwiseJudgment.objects.filter(item__project=project).aggregate(n=Count("id"), last=Max("id")),
        Snapshot.objects.ready().filter(project=project).aggregate(n=Count("id"), last=Max("id")),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def metrics_refresh_start(
    *, project: Project, user: AbstractBaseUser | None = None, force: bool = False
) -> MetricsRefresh | None:
    """Queue a recomputation for the current data version unless one is already queued or running for it
    (or the cache already holds it and `force` is off). Returns the job that will produce the numbers."""
    version = metrics_data_version(project=project)
    pending = MetricsRefresh.objects.filter(
        project=project, data_version=version, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).first()
    if pending:
        return pending
    cache = MetricsCache.objects.filter(project=project).first()
    if cache and cache.data_version == version and not force:
        return None
    with transaction.atomic():
        job = MetricsRefresh.objects.create(project=project, created_by=user, data_version=version, total=1)
        enqueue(metrics_refresh_task, job.id)
    return job


def metrics_refresh_run(*, job: MetricsRefresh) -> MetricsCache:
    job.mark_running()
    started = time.perf_counter()
    try:
        version = metrics_data_version(project=job.project)
        payload = dashboard_payload(project=job.project)
    except Exception as error:
        job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    seconds = time.perf_counter() - started
    cache, _ = MetricsCache.objects.update_or_create(
        project=job.project, defaults={"data_version": version, "payload": payload, "seconds": seconds}
    )
    job.report_progress(done=1)
    job.mark_finished(JobStatus.SUCCEEDED, message=f"Computed in {seconds:.1f} s.")
    return cache


def metrics_state(*, project: Project) -> dict:
    """What a dashboard shows: the cached payload (possibly stale), whether it is current, and the job
    recomputing it. Starts a recomputation when the data changed and none is queued."""
    cache = MetricsCache.objects.filter(project=project).first()
    version = metrics_data_version(project=project)
    current = bool(cache and cache.data_version == version)
    job = None
    if not current:
        job = metrics_refresh_start(project=project)
    return {"cache": cache, "payload": cache.payload if cache else {}, "is_current": current, "refresh": job}


# ---------------------------------------------------------------- the payload


def dashboard_payload(*, project: Project, with_diversity: bool = True) -> dict:
    """Every number the dashboards show. `with_diversity` False skips the diversity groups (they embed
    texts with the sentence model); bench_evaluation uses that with random vectors instead."""
    codebook = project.codebook
    label_names = codebook.label_names if codebook else []
    samples = list(
        Sample.objects.filter(project=project).values_list(
            "id", "text", "provenance", "final_label", "final_source"
        )
    )
    llm_rows = list(
        LLMAnnotation.objects.filter(sample__project=project, is_current=True)
        .order_by("sample_id", "-id")
        .values_list("sample_id", "label", "confidence", "distribution", "valid")
    )
    human_rows = list(
        HumanAnnotation.objects.filter(sample__project=project)
        .exclude(source=HumanSource.ADJUDICATION)
        .order_by("-created_at", "-id")
        .values_list(
            "sample_id",
            "annotator_id",
            "annotator__username",
            "label",
            "rating",
            "flag",
            "seconds_spent",
            "created_at",
            "id",
        )
    )
    llm_label: dict[int, str] = {}
    for sample_id, label, _c, _d, valid in llm_rows:
        if valid and label:
            llm_label.setdefault(sample_id, label)
    return {
        "computed_at": timezone.now().isoformat(),
        "label_names": label_names,
        "counts": {
            "samples": len(samples),
            "llm_labelled": len(llm_label),
            "human_answers": len(human_rows),
            "human_verified": sum(1 for s in samples if s[4] in HUMAN_VERIFIED_SOURCES),
        },
        "labels": label_distribution(
            samples=samples, llm_label=llm_label, human_rows=human_rows, label_names=label_names
        ),
        "confidence": confidence_histograms(llm_rows),
        "faithfulness": faithfulness_summary(samples=samples, human_rows=human_rows),
        "agreement": agreement_summary(
            samples=samples, llm_label=llm_label, human_rows=human_rows, label_names=label_names
        ),
        "annotators": annotator_stats(samples=samples, llm_label=llm_label, human_rows=human_rows),
        "diversity": diversity_groups(project=project, samples=samples) if with_diversity else [],
        "pairwise": pairwise_summary(project=project),
    }


def label_distribution(*, samples, llm_label: dict[int, str], human_rows, label_names: list[str]) -> dict:
    final = Counter(s[3] for s in samples if s[3])
    human = Counter(row[3] for row in human_rows if row[3])
    llm = Counter(llm_label.values())
    names = list(label_names) + sorted((set(final) | set(human) | set(llm)) - set(label_names))
    return {
        "names": names,
        "final": [final.get(n, 0) for n in names],
        "llm": [llm.get(n, 0) for n in names],
        "human": [human.get(n, 0) for n in names],
        "unlabelled": sum(1 for s in samples if not s[3]),
    }


def confidence_histograms(llm_rows, bins: int = 10) -> dict:
    confidences = [c for _s, _l, c, _d, valid in llm_rows if valid and c is not None]
    entropies = [metrics.entropy(d.values()) for _s, _l, _c, d, valid in llm_rows if valid and d]
    confidence_counts, confidence_edges = np.histogram(confidences, bins=bins, range=(0.0, 1.0))
    top = max(1e-9, max(entropies, default=1.0))
    entropy_counts, entropy_edges = np.histogram(entropies, bins=bins, range=(0.0, top))
    return {
        "n": len(confidences),
        "confidence_edges": confidence_edges.tolist(),
        "confidence_counts": confidence_counts.tolist(),
        "entropy_edges": entropy_edges.tolist(),
        "entropy_counts": entropy_counts.tolist(),
        "mean_confidence": float(np.mean(confidences)) if confidences else None,
    }


def provenance_groups(provenance: dict) -> list[tuple[str, str]]:
    """(dimension, value) pairs a generated sample belongs to: its run, its config and each condition value."""
    if not isinstance(provenance, dict):
        return []
    groups = []
    run = provenance.get("run_id") or provenance.get("run")
    if run not in (None, ""):
        groups.append(("run", str(run)))
    config = provenance.get("config_name") or provenance.get("config")
    if config not in (None, ""):
        groups.append(("config", str(config)))
    conditions = provenance.get("conditions")
    if isinstance(conditions, dict):
        groups.extend(("condition", f"{name}={value}") for name, value in sorted(conditions.items()))
    return groups


def _proportion_row(dimension: str, value: str, acceptable: int, n: int) -> dict:
    interval = metrics.wilson_interval(acceptable, n)
    return {"dimension": dimension, "value": value, "acceptable": acceptable, "n": n,
            "share": interval.share, "low": interval.low, "high": interval.high}  # fmt: skip


def faithfulness_summary(*, samples, human_rows) -> dict:
    """Share of acceptable items from human A–D ratings (A/B acceptable unless flagged unfaithful, harmful or
    off-topic; a flag of those kinds without a rating counts as not acceptable), one observation per rating."""
    by_sample = {s[0]: s for s in samples}
    tallies: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    ratings, flags = Counter(), Counter()
    for sample_id, _aid, _name, _label, rating, flag, *_ in human_rows:
        if flag:
            flags[flag] += 1
        if not rating and flag not in UNFAITHFUL_FLAGS:
            continue
        if rating:
            ratings[rating] += 1
        acceptable = int(rating in ACCEPTABLE_RATINGS and flag not in UNFAITHFUL_FLAGS)
        sample = by_sample.get(sample_id)
        keys = [("all", "all items")]
        if sample is not None:
            keys += provenance_groups(sample[2])
            keys.append(("label", sample[3] or "(unlabelled)"))
        for key in keys:
            tallies[key][0] += acceptable
            tallies[key][1] += 1
    overall = tallies.pop(("all", "all items"), [0, 0])
    order = {"run": 0, "config": 1, "condition": 2, "label": 3}
    groups = [
        _proportion_row(d, v, a, n)
        for (d, v), (a, n) in sorted(tallies.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    ]
    return {
        "overall": _proportion_row("all", "all items", *overall),
        "groups": groups,
        "ratings": {r: ratings.get(r, 0) for r in "ABCD"},
        "flags": dict(flags),
    }


def faithfulness_with_targets(faithfulness: dict, *, margin: float) -> list[dict]:
    """Add, per row, how many more ratings would narrow the 95% interval to ±margin at the observed share."""
    rows = [faithfulness["overall"], *faithfulness["groups"]] if faithfulness else []
    out = []
    for row in rows:
        needed = metrics.ratings_for_margin(row["share"] if row["n"] else 0.5, margin)
        out.append({**row, "more_needed": max(0, needed - row["n"])})
    return out


def _latest_human_labels(human_rows) -> dict[int, dict[int, str]]:
    """sample id → {annotator id: label}, newest answer per annotator (rows arrive newest first)."""
    labels: dict[int, dict[int, str]] = defaultdict(dict)
    for sample_id, annotator_id, _name, label, *_ in human_rows:
        if label and annotator_id is not None:
            labels[sample_id].setdefault(annotator_id, label)
    return labels


def _period(moment: datetime, span_days: int) -> str:
    if span_days > 60:
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.date().isoformat()


def agreement_summary(*, samples, llm_label: dict[int, str], human_rows, label_names: list[str]) -> dict:
    latest = _latest_human_labels(human_rows)
    names = {row[1]: row[2] for row in human_rows if row[1] is not None}
    human_human = metrics.rater_agreement(latest, names)
    # human (the sample's human final label) vs the LLM's current label
    human_final = {s[0]: s[3] for s in samples if s[4] in HUMAN_VERIFIED_SOURCES and s[3]}
    shared = [(human_final[i], llm_label[i]) for i in human_final if i in llm_label]
    labels = list(label_names) + sorted({x for pair in shared for x in pair} - set(label_names))
    matrix = metrics.confusion_matrix([h for h, _ in shared], [m for _, m in shared], labels)
    kappa = metrics.cohen_kappa([h for h, _ in shared], [m for _, m in shared]) if shared else float("nan")
    human_llm = {
        "n": len(shared),
        "agreement": (sum(1 for h, m in shared if h == m) / len(shared)) if shared else None,
        "kappa": None if np.isnan(kappa) else kappa,
        "labels": labels,
        "matrix": matrix.tolist(),
        "per_label": [vars(s) for s in metrics.per_label_scores(matrix, labels)],
    }
    # over time: each human answer against the LLM label of its sample, by the day (or week) it was given
    answers = [(row[7], row[3], llm_label[row[0]]) for row in human_rows if row[3] and row[0] in llm_label]
    over_time = []
    if answers:
        span = (max(a[0] for a in answers) - min(a[0] for a in answers)).days
        by_period: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for moment, human, llm in answers:
            by_period[_period(moment, span)].append((human, llm))
        for period in sorted(by_period):
            pairs = by_period[period]
            k = metrics.cohen_kappa([h for h, _ in pairs], [m for _, m in pairs])
            over_time.append({"period": period, "n": len(pairs), "agreement": sum(h == m for h, m in pairs) / len(pairs),
                              "kappa": None if np.isnan(k) else k})  # fmt: skip
    return {"human_human": human_human, "human_llm": human_llm, "over_time": over_time}


def annotator_stats(*, samples, llm_label: dict[int, str], human_rows) -> list[dict]:
    final = {s[0]: s[3] for s in samples}
    stats: dict[int, dict] = {}
    seen: set[tuple[int, int]] = set()
    for sample_id, annotator_id, name, label, rating, flag, seconds, _created, _id in human_rows:
        if annotator_id is None or (sample_id, annotator_id) in seen:
            continue
        seen.add((sample_id, annotator_id))
        row = stats.setdefault(annotator_id, {"name": name, "answers": 0, "llm_n": 0, "llm_agree": 0, "final_n": 0,
                                              "final_agree": 0, "seconds": [], "ratings": 0, "flags": 0})  # fmt: skip
        row["answers"] += 1
        row["ratings"] += bool(rating)
        row["flags"] += bool(flag)
        if seconds is not None:
            row["seconds"].append(seconds)
        if label and sample_id in llm_label:
            row["llm_n"] += 1
            row["llm_agree"] += label == llm_label[sample_id]
        if label and final.get(sample_id):
            row["final_n"] += 1
            row["final_agree"] += label == final[sample_id]
    out = []
    for row in sorted(stats.values(), key=lambda r: -r["answers"]):
        out.append({
            "name": row["name"], "answers": row["answers"], "ratings": row["ratings"], "flags": row["flags"],
            "agree_llm": row["llm_agree"] / row["llm_n"] if row["llm_n"] else None,
            "agree_final": row["final_agree"] / row["final_n"] if row["final_n"] else None,
            "median_seconds": float(np.median(row["seconds"])) if row["seconds"] else None,
        })  # fmt: skip
    return out


def _diversity_of(name: str, texts: list[str], *, seed: int) -> dict:
    from synthstudio.embeddings import embed_texts

    rng = np.random.default_rng(seed)
    picked = (
        texts
        if len(texts) <= EMBEDDING_SAMPLE
        else [texts[i] for i in rng.choice(len(texts), EMBEDDING_SAMPLE, replace=False)]
    )
    vectors = embed_texts(picked) if picked else None
    summary = metrics.diversity_summary(
        texts, vectors, self_bleu_sample=SELF_BLEU_SAMPLE, vendi_sample=VENDI_SAMPLE, seed=seed
    )
    return {"group": name, **summary}


def diversity_groups(*, project: Project, samples) -> list[dict]:
    """Diversity of all samples, of each run, config and condition value, and of the newest snapshots, side
    by side. Embedding-based numbers use up to EMBEDDING_SAMPLE texts per group (reported as `embedded`)."""
    groups: dict[str, list[str]] = {"all samples": [s[1] for s in samples]}
    by_group: dict[str, list[str]] = defaultdict(list)
    for _id, text, provenance, *_ in samples:
        for dimension, value in provenance_groups(provenance):
            by_group[f"{dimension} {value}"].append(text)
    for name in sorted(by_group, key=lambda g: -len(by_group[g]))[: MAX_DIVERSITY_GROUPS - 1]:
        if len(by_group[name]) >= 2:
            groups[name] = by_group[name]
    for snapshot in Snapshot.objects.ready().filter(project=project).order_by("-version")[:3]:
        groups[f"snapshot v{snapshot.version}"] = list(snapshot.items.values_list("text", flat=True))
    return [
        _diversity_of(name, texts, seed=index) for index, (name, texts) in enumerate(groups.items()) if texts
    ]
