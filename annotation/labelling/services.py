"""Cross-model workflows of LLM labelling: the codebook as the labelling core reads it, recording LLM labels,
importing labelled rows, labelling runs and the demos they show the LLM.

`labelling_run_start` → `annotation.tasks.labelling_run_task` → `labelling_run_execute` (resumable: a sample
this run already labelled is skipped) → `llm_annotations_record` (one new current LLMAnnotation per sample,
older ones no longer current, final label refreshed) → a signals run (annotation.routing.signals).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.labelling.distributions import CodebookSpec, Demo, LabelReading, LabelSpec
from annotation.labelling.llm import ChunkResult, llm_label_chunk
from annotation.labelling.offline import OFFLINE_MODEL_NAME, label_texts, offline_readings
from annotation.models import LabellingRun, LabellingRunKind
from annotation.review.final_labels import final_label_refresh
from annotation.routing.signals import signals_run_after_new_labels
from annotation.tasks import labelling_run_task
from synthstudio.embeddings import embed_texts
from synthstudio.jobs import enqueue, failure_text, job_resume
from synthstudio.models import (
    Codebook,
    JobStatus,
    LabelMethod,
    LLMAnnotation,
    Project,
    Sample,
    text_hash,
)

logger = logging.getLogger(__name__)

CHUNK = 64  # samples per progress step of a labelling run


# ------------------------------------------------------------------------------------------------ codebook


def codebook_spec(codebook: Codebook) -> CodebookSpec:
    """The codebook humans read, as the pure labelling core takes it."""
    return CodebookSpec(
        task_description=codebook.task_description,
        guidelines=codebook.guidelines,
        labels=tuple(
            LabelSpec(label.name, label.description, tuple(label.examples or ()))
            for label in codebook.labels.all()
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
        LLMAnnotation.objects.filter(sample__in=[s.pk for s in samples], is_current=True).update(
            is_current=False
        )
        created = LLMAnnotation.objects.bulk_create(rows, batch_size=500)
        for sample in samples:
            final_label_refresh(sample=sample)
    return created


def llm_annotations_import(
    *, project: Project, rows: Sequence[dict], model_name: str = "imported"
) -> list[Sample]:
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
        samples = samples.exclude(
            llm_annotations__is_current=True, llm_annotations__created_at__lt=run.created_at
        )
    return list(samples.order_by("id"))


def labelling_run_execute(*, run: LabellingRun) -> None:
    """The worker body. Per chunk: label, record, report progress. Model output naming no label is recorded
    as invalid and counted; an unreachable endpoint fails the run, keeping what finished. A refine run is
    FreeAL's loop instead (annotation.labelling.refine)."""
    if run.kind == LabellingRunKind.REFINE:
        from annotation.labelling.refine import refine_run_execute  # refine builds on this module

        refine_run_execute(run=run)
        return
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
        run.mark_finished(JobStatus.FAILED, error=failure_text(error))
        return
    if _run_cancelled(run):
        return
    notes = []
    if run.invalid:
        notes.append(f"{run.invalid} answers named no valid label (recorded as invalid).")
    if run.failed:
        notes.append(f"{run.failed} samples got no answer from the endpoint; a re-run labels them.")
    run.mark_finished(JobStatus.SUCCEEDED, message=" ".join(notes))
    signals_run_after_new_labels(project=run.project, user=run.created_by)


class LabellingEndpointError(RuntimeError):
    """Every call of a chunk failed after the client's retries: the endpoint is unreachable or broken."""


def _run_cancelled(run: LabellingRun) -> bool:
    return LabellingRun.objects.filter(pk=run.pk, status=JobStatus.CANCELLED).exists()


def _offline_chunk(
    spec: CodebookSpec, chunk: Sequence[Sample], label_vectors: np.ndarray, owners: list[int]
) -> ChunkResult:
    readings = offline_readings(embed_texts([sample.text for sample in chunk]), label_vectors, owners, spec)
    raws = [
        json.dumps({"offline": True, "similarities": r.details.get("similarities", {})}) for r in readings
    ]
    return ChunkResult(list(chunk), readings, raws, cached=0, transport_failures=0)


def labelling_demos(*, project: Project, samples: Sequence[Sample], count: int) -> list[list[Demo]]:
    """Per sample, `count` demos by embedding similarity: human-verified items first, then seed items with a
    final label. The sample itself is never its own demo."""
    if count <= 0:
        return [[] for _ in samples]
    pool = list(
        Sample.objects.filter(project=project)
        .exclude(final_label="")
        .human_verified()
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
