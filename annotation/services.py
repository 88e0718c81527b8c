"""Cross-model workflows of LLM labelling and routing (issue 4).

Labelling: `labelling_run_start` → task → `labelling_run_execute` (resumable: a sample this run already
labelled is skipped) → `llm_annotations_record` (one new current LLMAnnotation per sample, older ones no
longer current, final label refreshed) → a signals run.
Signals: `signals_run_start` → task → `signals_refresh` (embeddings in batches, cached per model and text;
uncertainty, student and neighbour signals stored in SampleSignals).
Routing: `routing_policy_for`, `routing_preview` (what the policy would route, nothing written),
`routing_route_next_batch` (writes ReviewTasks), and the hook the review queue calls after every answer:

    routing_after_answer(*, project) -> bool

It is cheap (the annotator's request runs it): with no active policy (cached) or routed items still open it
costs at most one small query. Once the open routed batch is fully answered and budget remains it queues
`routing_next_batch_task`, and a worker routes the next batch (refitting the learned router on all answers so
far), never beyond the budget and never a sample twice. Queuing twice routes one batch: the task re-checks
under the policy row's lock that no routed item is open.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.labelling.distributions import CodebookSpec, Demo, LabelReading, LabelSpec
from annotation.labelling.llm import ChunkResult, llm_label_chunk
from annotation.labelling.offline import OFFLINE_MODEL_NAME, label_texts, offline_readings
from annotation.models import (
    LabellingRun,
    ReviewTask,
    RoutingPolicy,
    RoutingStrategy,
    SampleSignals,
    SignalsRun,
    TaskKind,
)
from annotation.review.final_labels import final_label_refresh
from annotation.routing import router
from annotation.routing import sample_signals as signal_core
from annotation.routing.plan import RoutingPick, plan_routing_batch
from synthstudio.embeddings import embed_texts
from synthstudio.jobs import enqueue, job_resume
from synthstudio.models import (
    Codebook,
    FinalSource,
    JobStatus,
    LabelMethod,
    LLMAnnotation,
    Project,
    Sample,
    text_hash,
)
from synthstudio.vectors import cosine_knn

logger = logging.getLogger(__name__)

CHUNK = 64  # samples per progress step of a labelling run
EMBED_BATCH = 256  # texts per embedding batch of a signals run
ROUTED_KINDS = (TaskKind.ROUTED, TaskKind.COLD_START)
ROUTING_ACTIVE_CACHE_SECONDS = 10  # how long another process may act on an old "is the policy active?" answer
ROUTING_REQUEUE_AFTER_SECONDS = 60  # a queued batch not routed by then (no worker, lost message) is queued again


# ------------------------------------------------------------------------------------------------ codebook


def codebook_spec(codebook: Codebook) -> CodebookSpec:
    """The codebook humans read, as the pure labelling core takes it."""
    return CodebookSpec(
        task_description=codebook.task_description,
        guidelines=codebook.guidelines,
        labels=tuple(
            LabelSpec(label.name, label.description, tuple(label.examples or ())) for label in codebook.labels.all()
        ),
    )


# ------------------------------------------------------------------------------------------------ recording


def llm_annotations_record(
    *,
    samples: Sequence[Sample],
    readings: Sequence[LabelReading],
    codebook: Codebook | None,
    method: str,
    model_name: str,
    run_ref: str,
    raw_outputs: Sequence[str] | None = None,
) -> list[LLMAnnotation]:
    """Store one new current LLMAnnotation per sample (older ones stop being current) and refresh final labels.

    An invalid reading is stored as such (valid False, empty label): recorded, never guessed.
    """
    raw_outputs = raw_outputs or [""] * len(samples)
    rows = [
        LLMAnnotation(
            sample=sample,
            codebook=codebook,
            label=reading.label if reading.valid else "",
            distribution=reading.distribution if reading.valid else {},
            confidence=reading.confidence if reading.valid else None,
            method=method,
            model_name=model_name,
            rationale=reading.rationale,
            raw_output=raw,
            valid=reading.valid,
            run_ref=run_ref,
            is_current=True,
        )
        for sample, reading, raw in zip(samples, readings, raw_outputs, strict=True)
    ]
    with transaction.atomic():
        LLMAnnotation.objects.filter(sample__in=[s.pk for s in samples], is_current=True).update(is_current=False)
        created = LLMAnnotation.objects.bulk_create(rows, batch_size=500)
        for sample in samples:
            final_label_refresh(sample=sample)
    return created


def llm_annotations_import(*, project: Project, rows: Sequence[dict], model_name: str = "imported") -> list[Sample]:
    """Create one sample per row with its imported LLM label (method `imported`). rows: {text, label,
    confidence?, distribution?}. Unlike the file import (synthstudio.importing), rows with the same text stay
    separate samples: the routing benchmark's rows are distinct judgements of possibly repeated statements."""
    codebook = project.codebook
    names = codebook.label_names if codebook else []
    with transaction.atomic():
        samples = Sample.objects.bulk_create(
            [Sample(project=project, text=row["text"], text_hash=text_hash(row["text"])) for row in rows],
            batch_size=500,
        )
        llm_annotations_record(
            samples=samples,
            readings=[imported_reading(row, names) for row in rows],
            codebook=codebook,
            method=LabelMethod.IMPORTED,
            model_name=model_name,
            run_ref="import",
        )
    return samples


def imported_reading(row: dict, names: Sequence[str]) -> LabelReading:
    """An imported label as a reading: its distribution when given, else its confidence (default 1) on the
    label and the rest shared evenly. A label outside the codebook is invalid."""
    label = str(row.get("label") or "")
    distribution = {name: float(p) for name, p in (row.get("distribution") or {}).items() if name in names}
    if label not in names and distribution:
        label = max(distribution, key=distribution.__getitem__)
    if label not in names:
        return LabelReading("", {}, False, details={"error": f"label {label!r} is not in the codebook"})
    if distribution and sum(distribution.values()) > 0:
        total = sum(distribution.values())
        probabilities = [distribution.get(name, 0.0) / total for name in names]
    else:
        confidence = row.get("confidence")
        confidence = 1.0 if confidence in (None, "") else min(1.0, max(0.0, float(confidence)))
        rest = (1.0 - confidence) / (len(names) - 1) if len(names) > 1 else 0.0
        probabilities = [confidence if name == label else rest for name in names]
    result = dict(zip(names, probabilities, strict=True))
    return LabelReading(label, result, True, confidence=result[label])


# ------------------------------------------------------------------------------------------------ labelling runs


def labelling_run_start(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    method: str,
    endpoint=None,
    samples_per_item: int = 5,
    temperature: float = 0.7,
    demo_count: int = 0,
    only_unlabelled: bool = True,
) -> LabellingRun:
    """Create a labelling run and enqueue it. Without an endpoint the method is `offline`."""
    from annotation.tasks import labelling_run_task

    codebook = project.codebook
    if codebook is None:
        raise ValueError("The project has no codebook to label with.")
    if endpoint is None:
        method = LabelMethod.OFFLINE
    run = LabellingRun.objects.create(
        project=project,
        created_by=user,
        codebook=codebook,
        method=method,
        endpoint=endpoint,
        model_name=OFFLINE_MODEL_NAME if endpoint is None else endpoint.model,
        samples_per_item=samples_per_item,
        temperature=temperature,
        demo_count=demo_count,
        only_unlabelled=only_unlabelled,
        total=Sample.objects.filter(project=project).count(),
    )
    enqueue(labelling_run_task, run.pk)
    return run


def labelling_run_pending_samples(run: LabellingRun) -> list[Sample]:
    """Samples this run still has to label (a resumed run skips what it already did)."""
    samples = Sample.objects.filter(project_id=run.project_id).exclude(llm_annotations__run_ref=run.run_ref)
    if run.only_unlabelled:
        samples = samples.exclude(llm_annotations__is_current=True, llm_annotations__created_at__lt=run.created_at)
    return list(samples.order_by("id"))


def labelling_run_execute(*, run: LabellingRun) -> None:
    """The worker body. Per chunk: label, record, report progress. Model output naming no label is recorded
    as invalid and counted; an unreachable endpoint fails the run, keeping what finished."""
    if run.is_finished:
        return
    run.mark_running()
    pending = labelling_run_pending_samples(run)
    already = Sample.objects.filter(project_id=run.project_id, llm_annotations__run_ref=run.run_ref).count()
    run.report_progress(total=already + len(pending), done=already)
    spec = codebook_spec(run.codebook)
    label_vectors: np.ndarray | None = None
    owners: list[int] = []
    try:
        if run.is_offline:
            texts, owners = label_texts(spec)
            label_vectors = embed_texts(texts)
        for start in range(0, len(pending), CHUNK):
            if _run_cancelled(run):
                return
            chunk = pending[start : start + CHUNK]
            if run.is_offline:
                outcome = _offline_chunk(spec, chunk, label_vectors, owners)
            else:
                outcome = llm_label_chunk(
                    endpoint=run.endpoint,
                    method=run.method,
                    spec=spec,
                    samples=chunk,
                    demos=labelling_demos(project=run.project, samples=chunk, count=run.demo_count),
                    samples_per_item=run.samples_per_item,
                    temperature=run.temperature,
                    should_stop=lambda: _run_cancelled(run),
                )
            llm_annotations_record(
                samples=outcome.samples,
                readings=outcome.readings,
                codebook=run.codebook,
                method=run.method,
                model_name=run.model_name,
                run_ref=run.run_ref,
                raw_outputs=outcome.raw_outputs,
            )
            invalid = sum(1 for reading in outcome.readings if not reading.valid)
            run.report_progress(
                done=run.done + len(outcome.samples),
                failed=run.failed + outcome.transport_failures,
                invalid=run.invalid + invalid,
                cached=run.cached + outcome.cached,
            )
            if outcome.transport_failures and not outcome.samples:
                raise LabellingEndpointError(outcome.first_error)
    except Exception as error:  # the run fails with a message; finished chunks stay recorded
        logger.exception("labelling run %s failed", run.pk)
        run.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        return
    if _run_cancelled(run):
        return
    notes = []
    if run.invalid:
        notes.append(f"{run.invalid} answers named no valid label (recorded as invalid).")
    if run.failed:
        notes.append(f"{run.failed} samples got no answer from the endpoint; a re-run labels them.")
    run.mark_finished(JobStatus.SUCCEEDED, message=" ".join(notes))
    signals_run_start(project=run.project, user=run.created_by)


class LabellingEndpointError(RuntimeError):
    """Every call of a chunk failed after the client's retries: the endpoint is unreachable or broken."""


def _run_cancelled(run: LabellingRun) -> bool:
    return LabellingRun.objects.filter(pk=run.pk, status=JobStatus.CANCELLED).exists()


def _offline_chunk(spec: CodebookSpec, chunk: Sequence[Sample], label_vectors: np.ndarray, owners: list[int]) -> ChunkResult:
    readings = offline_readings(embed_texts([sample.text for sample in chunk]), label_vectors, owners, spec)
    raws = [json.dumps({"offline": True, "similarities": r.details.get("similarities", {})}) for r in readings]
    return ChunkResult(list(chunk), readings, raws, cached=0, transport_failures=0)


def labelling_demos(*, project: Project, samples: Sequence[Sample], count: int) -> list[list[Demo]]:
    """Per sample, `count` demos by embedding similarity: human-verified items first, then seed items with a
    final label. The sample itself is never its own demo."""
    if count <= 0:
        return [[] for _ in samples]
    pool = list(
        Sample.objects.filter(project=project)
        .exclude(final_label="")
        .filter(final_source__in=[FinalSource.HUMAN, FinalSource.ADJUDICATED])
        .only("id", "text", "final_label")[:2000]
    )
    human_ids = {s.pk for s in pool}
    if len(pool) < count:
        pool += list(
            Sample.objects.filter(project=project, is_seed=True)
            .exclude(final_label="")
            .exclude(pk__in=human_ids)
            .only("id", "text", "final_label")[: 2000 - len(pool)]
        )
    if not pool:
        return [[] for _ in samples]
    pool_vectors = embed_texts([s.text for s in pool])
    sample_vectors = embed_texts([s.text for s in samples])
    similarity = sample_vectors @ pool_vectors.T
    # human-verified first: a bonus larger than any cosine difference
    similarity = similarity + np.array([2.0 if s.pk in human_ids else 0.0 for s in pool])[None, :]
    demos = []
    for row, sample in zip(similarity, samples, strict=True):
        order = [i for i in np.argsort(-row, kind="stable") if pool[i].pk != sample.pk][:count]
        demos.append([Demo(pool[i].text, pool[i].final_label) for i in order])
    return demos


def labelling_run_resume(*, run: LabellingRun) -> bool:
    """Send an unfinished run to a worker again (after a worker crash or restart) unless a live worker holds
    it: it skips what it did and its finished LLM calls come from the cache. The stall detector does the same
    on its own once the heartbeat is JOB_STALL_SECONDS old."""
    return job_resume(job=run)


def labelling_run_cancel(*, run: LabellingRun) -> None:
    if not run.is_finished:
        run.mark_finished(JobStatus.CANCELLED, message="Cancelled by a lead.")


# ------------------------------------------------------------------------------------------------ signals


def signals_run_start(*, project: Project, user: AbstractBaseUser | None = None) -> SignalsRun:
    from annotation.tasks import signals_run_task

    run = SignalsRun.objects.create(project=project, created_by=user)
    enqueue(signals_run_task, run.pk)
    return run


@dataclass
class ProjectLabels:
    """A project's samples with their current LLM distributions, aligned row by row."""

    samples: list[Sample]
    label_names: list[str]
    probs: np.ndarray  # (n, L)
    llm_labels: list[str]
    valid: np.ndarray  # bool (n,)
    offline: np.ndarray  # bool (n,): the current label came from the offline labeller
    embeddings: np.ndarray | None = None


def project_labels(*, project: Project, with_embeddings: bool = False) -> ProjectLabels:
    """Every sample of the project with its current LLM annotation as a probability row (uniform where the
    LLM named no valid label). Two queries, no per-row ones."""
    codebook = project.codebook
    names = codebook.label_names if codebook else []
    samples = list(Sample.objects.filter(project=project).order_by("id").only("id", "text", "final_label", "final_source"))
    current = {
        a.sample_id: a
        for a in LLMAnnotation.objects.filter(sample__project=project, is_current=True).only(
            "sample_id", "label", "distribution", "confidence", "valid", "method"
        )
    }
    probs = np.full((len(samples), max(1, len(names))), 1.0 / max(1, len(names)))
    labels, valid = [], np.zeros(len(samples), dtype=bool)
    offline = np.zeros(len(samples), dtype=bool)
    for row, sample in enumerate(samples):
        annotation = current.get(sample.pk)
        offline[row] = annotation is not None and annotation.method == LabelMethod.OFFLINE
        if annotation and annotation.valid and annotation.label in names:
            probs[row] = label_probabilities(annotation, names)
            valid[row] = True
            labels.append(annotation.label)
        else:
            labels.append("")
    embeddings = None
    if with_embeddings:
        embeddings = embed_texts([s.text for s in samples]) if samples else np.zeros((0, 0), dtype=np.float32)
    return ProjectLabels(samples, names, probs, labels, valid, offline, embeddings)


def label_probabilities(annotation: LLMAnnotation, names: Sequence[str]) -> list[float]:
    """The annotation's distribution over `names`; an imported label with only a confidence (or nothing)
    puts the confidence (default 1) on its label and shares the rest evenly."""
    if annotation.distribution and sum(float(v) for v in annotation.distribution.values()) > 0:
        return [float(annotation.distribution.get(name, 0.0)) for name in names]
    confidence = 1.0 if annotation.confidence is None else float(annotation.confidence)
    rest = (1.0 - confidence) / (len(names) - 1) if len(names) > 1 else 0.0
    return [confidence if name == annotation.label else rest for name in names]


def signals_refresh(*, project: Project, run: SignalsRun | None = None) -> int:
    """Embed every sample in batches (cached) and store its routing signals. Returns the number stored."""
    samples = list(Sample.objects.filter(project=project).order_by("id").only("id", "text"))
    if run:
        run.mark_running()
        run.report_progress(total=len(samples), done=0)
    for start in range(0, len(samples), EMBED_BATCH):
        embed_texts([s.text for s in samples[start : start + EMBED_BATCH]])
        if run:
            run.report_progress(done=min(len(samples), start + EMBED_BATCH))
    data = project_labels(project=project, with_embeddings=True)
    computed = sample_signals_compute(data)
    now = timezone.now()
    rows = [
        SampleSignals(sample_id=sample.pk, computed_at=now, **computed[i]) for i, sample in enumerate(data.samples)
    ]
    SampleSignals.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["sample"],
        update_fields=[
            "llm_label", "least_confidence", "margin", "entropy", "student_probability", "student_label",
            "knn_agreement", "duplicate_of", "computed_at",
        ],
    )
    if run:
        run.mark_finished(JobStatus.SUCCEEDED, message=f"Signals for {len(rows)} samples.")
    return len(rows)


def sample_signals_compute(data: ProjectLabels) -> list[dict]:
    """Per sample, the SampleSignals field values, from the selection engineer's signals core. Items without a
    valid LLM label get no uncertainty/student/neighbour values (the student trains on valid labels only)."""
    n = len(data.samples)
    uncertainty = signal_core.uncertainty_signals(data.probs)
    student_probability = np.full(n, np.nan)
    knn_agreement = np.full(n, np.nan)
    student_label = [""] * n
    valid_rows = np.flatnonzero(data.valid)
    if len(valid_rows) and data.embeddings is not None:
        labels = [data.llm_labels[i] for i in valid_rows]
        vectors = data.embeddings[valid_rows]
        oof, classes = signal_core.student_oof_probabilities(vectors, labels)
        codes, _ = signal_core.encode_labels(labels)
        student_probability[valid_rows] = oof[np.arange(len(codes)), codes]
        for row, best in zip(valid_rows, oof.argmax(axis=1), strict=True):
            student_label[row] = str(classes[best])
        neighbours, _ = cosine_knn(vectors, signal_core.KNN_AGREEMENT_K)
        knn_agreement[valid_rows] = signal_core.knn_label_agreement(vectors, labels, neighbours=neighbours)
    duplicate_of = signal_core.exact_duplicate_of([s.text for s in data.samples])
    if data.embeddings is not None and n > 1:
        near = signal_core.near_duplicates(data.embeddings).partner
        duplicate_of = np.where(duplicate_of >= 0, duplicate_of, np.where(near < np.arange(n), near, -1))
    return [
        {
            "llm_label": data.llm_labels[i],
            "least_confidence": _value(uncertainty["least_confidence"], i, data.valid),
            "margin": _value(uncertainty["margin"], i, data.valid),
            "entropy": _value(uncertainty["entropy"], i, data.valid),
            "student_probability": _value(student_probability, i, data.valid),
            "student_label": student_label[i],
            "knn_agreement": _value(knn_agreement, i, data.valid),
            "duplicate_of_id": data.samples[int(duplicate_of[i])].pk if duplicate_of[i] >= 0 else None,
        }
        for i in range(n)
    ]


def _value(values: np.ndarray | None, index: int, valid: np.ndarray) -> float | None:
    if values is None or not valid[index]:
        return None
    value = float(values[index])
    return value if np.isfinite(value) else None


# ------------------------------------------------------------------------------------------------ routing


def routing_policy_for(*, project: Project) -> RoutingPolicy:
    policy, _ = RoutingPolicy.objects.get_or_create(project=project)
    return policy


@dataclass(frozen=True)
class RoutingPreviewRow:
    sample: Sample
    priority: float
    reason: str
    kind: str
    llm_label: str
    offline: bool = False


@dataclass(frozen=True)
class RoutingState:
    budget: int
    routed: int
    open_tasks: int
    answered_items: int

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.routed)


def routing_state(*, project: Project, policy: RoutingPolicy) -> RoutingState:
    routed = ReviewTask.objects.filter(project=project, kind__in=ROUTED_KINDS)
    return RoutingState(
        budget=policy.budget_items(Sample.objects.filter(project=project).count()),
        routed=routed.count(),
        open_tasks=routed.filter(is_open=True).count(),
        answered_items=Sample.objects.filter(project=project).human_verified().count(),
    )


def routing_preview(*, project: Project, policy: RoutingPolicy, limit: int = 20) -> list[RoutingPreviewRow]:
    """What the policy would route next (nothing is written)."""
    rows, _ = _plan_next_batch(project=project, policy=policy)
    return rows[:limit]


def routing_route_next_batch(*, project: Project, only_when_answered: bool = False) -> list[ReviewTask]:
    """Route the next batch now (if budget remains). Serialised per project by locking the policy row; with
    `only_when_answered` (the automatic routing a finished batch queues), nothing happens while routed items
    still wait for answers or once the lead has deactivated the policy (checked under the lock, so two answers
    completing a batch at once route one batch, not two)."""
    with transaction.atomic():
        policy = RoutingPolicy.objects.select_for_update().get(pk=routing_policy_for(project=project).pk)
        if policy.next_batch_queued_at is not None:  # whatever happens below, the queued request is served
            RoutingPolicy.objects.filter(pk=policy.pk).update(next_batch_queued_at=None)
        if only_when_answered and (not policy.is_active or _open_routed_tasks(project).exists()):
            return []
        rows, _ = _plan_next_batch(project=project, policy=policy)
        if not rows:
            return []
        batch = (ReviewTask.objects.filter(project=project).aggregate(b=Max("batch"))["b"] or 0) + 1
        tasks = ReviewTask.objects.bulk_create(
            [
                ReviewTask(
                    project=project,
                    sample=row.sample,
                    kind=row.kind,
                    priority=row.priority,
                    reason=row.reason[:300],
                    strategy=policy.strategy if row.kind == TaskKind.ROUTED else policy.cold_start_strategy,
                    batch=batch,
                    required_answers=policy.annotators_per_item,
                )
                for row in rows
            ]
        )
    return tasks


def routing_after_answer(*, project: Project) -> bool:
    """The hook the review queue calls after each committed answer (undo, edit, adjudication), inside the
    annotator's request: so it never plans a batch itself. With no active policy or routed items still open it
    costs at most one small query; once the open routed batch is fully answered it queues the next batch for
    a worker. Returns whether it queued one."""
    if not routing_policy_active(project=project):
        return False
    if _open_routed_tasks(project).exists():
        return False
    return routing_next_batch_enqueue(project=project)


def routing_policy_active(*, project: Project) -> bool:
    """Whether the project's policy routes on answers; cached, and RoutingPolicy.save clears the cache."""
    key = RoutingPolicy.active_cache_key(project)
    active = cache.get(key)
    if active is None:
        active = RoutingPolicy.objects.filter(project=project, is_active=True).exists()
        cache.set(key, active, ROUTING_ACTIVE_CACHE_SECONDS)
    return active


def routing_next_batch_enqueue(*, project: Project) -> bool:
    """Queue `routing_next_batch_task` (on commit) unless the budget is spent or a batch was queued less than
    ROUTING_REQUEUE_AFTER_SECONDS ago and not routed yet. Marks the policy so the routing page can say so.
    A second queuing is harmless: the task routes only while no routed item is open, checked under a lock."""
    from annotation.tasks import routing_next_batch_task

    policy = (
        RoutingPolicy.objects.filter(project=project, is_active=True)
        .annotate(
            routed=_count_of(ReviewTask.objects.filter(project=OuterRef("project"), kind__in=ROUTED_KINDS)),
            sample_count=_count_of(Sample.objects.filter(project=OuterRef("project"))),
        )
        .first()
    )
    if policy is None or policy.routed >= policy.budget_items(policy.sample_count):
        return False
    now = timezone.now()
    queued_at = policy.next_batch_queued_at
    if queued_at is not None and now - queued_at < timedelta(seconds=ROUTING_REQUEUE_AFTER_SECONDS):
        return False
    RoutingPolicy.objects.filter(pk=policy.pk).update(next_batch_queued_at=now)
    enqueue(routing_next_batch_task, project.pk)
    return True


def _count_of(queryset) -> Coalesce:
    """COUNT(*) of a correlated queryset, as a subquery of one outer query."""
    counted = queryset.order_by().values("project").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _open_routed_tasks(project: Project):
    return ReviewTask.objects.filter(project=project, kind__in=ROUTED_KINDS, is_open=True)


def _plan_next_batch(*, project: Project, policy: RoutingPolicy) -> tuple[list[RoutingPreviewRow], RoutingState]:
    state = routing_state(project=project, policy=policy)
    size = min(policy.batch_size, state.remaining)
    if size <= 0:
        return [], state
    routed_ids = set(ReviewTask.objects.filter(project=project).values_list("sample_id", flat=True))
    cold_start_left = max(0, policy.cold_start_size - state.routed)
    strategy = policy.cold_start_strategy if cold_start_left else policy.strategy
    kind = TaskKind.COLD_START if cold_start_left else TaskKind.ROUTED
    size = min(size, cold_start_left) if cold_start_left else size
    data = project_labels(
        project=project, with_embeddings=strategy in {"kmeans", "votek", "votek_two_stage", "learned"}
    )
    verified = np.array([s.final_source in (FinalSource.HUMAN, FinalSource.ADJUDICATED) for s in data.samples], dtype=bool)
    routed = np.array([s.pk in routed_ids for s in data.samples], dtype=bool)
    candidates = np.flatnonzero(~routed & ~verified)
    signals = {
        row.sample_id: row
        for row in SampleSignals.objects.filter(sample__project=project).only(
            "sample_id", "student_label", "student_probability", "knn_agreement"
        )
    }
    if strategy == RoutingStrategy.LEARNED:
        picks = _learned_picks(data=data, signals=signals, verified=verified, excluded=routed, size=size)
    else:
        student_disagrees = np.array(
            [
                bool(
                    (row := signals.get(s.pk)) is not None
                    and row.student_label
                    and data.llm_labels[i]
                    and row.student_label != data.llm_labels[i]
                )
                for i, s in enumerate(data.samples)
            ],
            dtype=bool,
        )
        picks = plan_routing_batch(
            strategy=strategy,
            probs=data.probs,
            candidates=candidates,
            size=size,
            embeddings=data.embeddings,
            student_disagrees=student_disagrees,
            valid=data.valid,
            seed=project.pk + state.routed,
        )
    rows = [
        RoutingPreviewRow(
            data.samples[p.index], p.priority, p.reason, kind, data.llm_labels[p.index], bool(data.offline[p.index])
        )
        for p in picks
    ]
    return rows, state


def _learned_picks(
    *, data: ProjectLabels, signals: dict, verified: np.ndarray, excluded: np.ndarray, size: int
) -> list[RoutingPick]:
    """The learned router (annotation.router), refitted on every human-verified item: was the LLM wrong?
    Items the LLM gave no valid label count as fully suspicious (student and neighbours disagree)."""
    names = data.label_names
    column = {name: index for index, name in enumerate(names)}
    llm_label = np.array([column.get(label, 0) for label in data.llm_labels], dtype=np.int64)
    student = np.array([_signal(signals, s.pk, "student_probability", 0.5) for s in data.samples])
    agreement = np.array([_signal(signals, s.pk, "knn_agreement", 0.5) for s in data.samples])
    student[~data.valid], agreement[~data.valid] = 0.0, 0.0
    neighbours = None
    if data.embeddings is not None and len(data.samples) > 1:
        neighbours, _ = cosine_knn(data.embeddings, signal_core.KNN_AGREEMENT_K)
    items = router.RouterItems(
        probs=data.probs,
        llm_label=llm_label,
        student_prob=student,
        knn_agreement=agreement,
        text_length=np.array([len(s.text) for s in data.samples]),
        neighbours=neighbours,
        embeddings=data.embeddings if data.embeddings is not None and len(data.samples) > 1 else None,
    )
    reviewed = np.flatnonzero(verified)
    wrong = np.array([data.samples[i].final_label != data.llm_labels[i] for i in reviewed], dtype=bool)
    # the reviewers' own labels train a second student (annotation.routing.router.human_student_probability)
    human_labels = np.array([column.get(data.samples[i].final_label, -1) for i in reviewed], dtype=np.int64)
    batch = router.route_next_batch(
        items,
        reviewed=reviewed,
        llm_was_wrong=wrong,
        batch_size=size,
        exclude=np.flatnonzero(excluded),
        reviewed_labels=human_labels,
    )
    return [
        RoutingPick(int(index), float(error), reason + ("; no valid LLM label" if not data.valid[index] else ""))
        for index, error, reason in zip(batch.indices, batch.error_probability, batch.reasons, strict=True)
    ]


def _signal(signals: dict, sample_id: int, name: str, default: float) -> float:
    row = signals.get(sample_id)
    value = getattr(row, name, None) if row else None
    return default if value is None else float(value)
