"""FreeAL's collaborative loop as a labelling run of kind "refine" (Xiao et al. 2023, "FreeAL: Towards
Human-Free Active Learning in the Era of LLMs", survey §3.2.2).

Each pass:
1. the student (synthstudio.student, through annotation.labelling.student_pass) trains on the current
   final labels and FreeAL's loss split marks the LLM-labelled items clean or noisy (human-verified items
   are never noisy and never re-labelled);
2. demos are picked from the clean set as the paper does: k-means over each class's clean items the student
   agrees with, the medoid of each cluster (run.demo_count per class);
3. the LLM — or the offline labeller, whose demos then join the codebook texts it compares against — re-labels
   the noisy items with those demos; the new labels become current and final labels follow;
4. the student retrains on the next pass.
The run stops after run.max_passes passes, when nothing is noisy, or when the noisy set stops shrinking (the
pass that saw it is recorded with nothing re-labelled). run.passes holds one row per pass:
{pass, noisy, relabelled, changed}.
"""

from __future__ import annotations

import json
import logging

import numpy as np
from django.contrib.auth.models import AbstractBaseUser

from annotation.labelling.distributions import CodebookSpec, Demo
from annotation.labelling.llm import ChunkResult, llm_label_chunk
from annotation.labelling.offline import OFFLINE_MODEL_NAME, label_texts, offline_readings
from annotation.labelling.services import (
    CHUNK,
    LabellingEndpointError,
    codebook_spec,
    llm_annotations_record,
)
from annotation.labelling.student_pass import ProjectRefinement, project_refinement
from annotation.models import LabellingRun, LabellingRunKind
from annotation.routing.signals import signals_run_after_new_labels
from annotation.tasks import labelling_run_task
from synthstudio.embeddings import embed_texts
from synthstudio.jobs import enqueue, failure_text
from synthstudio.models import FinalSource, JobStatus, LabelMethod, Project, Sample
from synthstudio.student import class_medoids

logger = logging.getLogger(__name__)

DEFAULT_DEMOS_PER_CLASS = 2


def refine_run_start(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    method: str,
    endpoint=None,
    max_passes: int = 3,
    demos_per_class: int = DEFAULT_DEMOS_PER_CLASS,
    samples_per_item: int = 5,
    temperature: float = 0.7,
) -> LabellingRun:
    """Create a refine run and enqueue it (the labelling task runs it). Without an endpoint: offline."""
    codebook = project.codebook
    if codebook is None:
        raise ValueError("The project has no codebook to label with.")
    if max_passes < 1:
        raise ValueError("A refine run needs at least one pass.")
    run = LabellingRun.objects.create(
        project=project,
        created_by=user,
        kind=LabellingRunKind.REFINE,
        codebook=codebook,
        method=LabelMethod.OFFLINE if endpoint is None else method,
        endpoint=endpoint,
        model_name=OFFLINE_MODEL_NAME if endpoint is None else endpoint.model,
        samples_per_item=samples_per_item,
        temperature=temperature,
        demo_count=demos_per_class,
        only_unlabelled=False,
        max_passes=max_passes,
        total=max_passes,
    )
    enqueue(labelling_run_task, run.pk)
    return run


def refine_demos(refinement: ProjectRefinement, per_class: int) -> list[Demo]:
    """k-means medoids per class among the clean items whose label the student agrees with."""
    candidates = refinement.result.split.clean & refinement.result.trusted
    picked = class_medoids(refinement.features, refinement.labels, candidates, per_class=per_class)
    return [Demo(refinement.rows[i][1], refinement.rows[i][2]) for i in picked]


def _offline_relabel(spec: CodebookSpec, samples: list[Sample], demos: list[Demo]) -> ChunkResult:
    """The offline labeller with the demos as extra examples of their labels."""
    texts, owners = label_texts(spec)
    names = spec.label_names
    for demo in demos:
        if demo.label in names:
            texts.append(demo.text)
            owners.append(names.index(demo.label))
    readings = offline_readings(embed_texts([s.text for s in samples]), embed_texts(texts), owners, spec)
    raws = [
        json.dumps({"offline": True, "demos": len(demos), "similarities": r.details.get("similarities", {})})
        for r in readings
    ]
    return ChunkResult(list(samples), readings, raws, cached=0, transport_failures=0)


def refine_run_execute(*, run: LabellingRun) -> None:
    """The worker body of a refine run (resumable: a resumed run continues after its last recorded pass)."""
    if run.is_finished:
        return
    run.mark_running()
    spec = codebook_spec(run.codebook)
    per_class = run.demo_count or DEFAULT_DEMOS_PER_CLASS
    passes = list(run.passes or [])
    stop_reason = f"{run.max_passes} passes done."
    try:
        for number in range(len(passes) + 1, run.max_passes + 1):
            if LabellingRun.objects.filter(pk=run.pk, status=JobStatus.CANCELLED).exists():
                return
            refinement = project_refinement(project=run.project)
            if isinstance(refinement, str):
                stop_reason = refinement
                break
            sources = np.array([row[3] for row in refinement.rows])
            noisy_rows = np.flatnonzero(~refinement.result.split.clean & (sources == FinalSource.LLM))
            if passes and len(noisy_rows) >= passes[-1]["noisy"]:
                passes.append({"pass": number, "noisy": int(len(noisy_rows)), "relabelled": 0, "changed": 0})
                stop_reason = "The noisy set stopped shrinking."
                break
            if not len(noisy_rows):
                passes.append({"pass": number, "noisy": 0, "relabelled": 0, "changed": 0})
                stop_reason = "No noisy items left."
                break
            demos = refine_demos(refinement, per_class)
            before = {refinement.rows[i][0]: refinement.rows[i][2] for i in noisy_rows}
            samples = list(Sample.objects.filter(pk__in=before).order_by("id"))
            relabelled = changed = invalid = 0
            for start in range(0, len(samples), CHUNK):
                chunk = samples[start : start + CHUNK]
                if run.is_offline:
                    outcome = _offline_relabel(spec, chunk, demos)
                else:
                    outcome = llm_label_chunk(
                        endpoint=run.endpoint,
                        method=run.method,
                        spec=spec,
                        samples=chunk,
                        demos=[demos] * len(chunk),
                        samples_per_item=run.samples_per_item,
                        temperature=run.temperature,
                        should_stop=lambda: False,
                    )
                if outcome.transport_failures and not outcome.samples:
                    raise LabellingEndpointError(outcome.first_error)
                llm_annotations_record(
                    samples=outcome.samples,
                    readings=outcome.readings,
                    codebook=run.codebook,
                    method=run.method,
                    model_name=run.model_name,
                    run_ref=run.run_ref,
                    raw_outputs=outcome.raw_outputs,
                )
                relabelled += len(outcome.samples)
                invalid += sum(1 for reading in outcome.readings if not reading.valid)
                changed += sum(
                    1
                    for sample, reading in zip(outcome.samples, outcome.readings, strict=True)
                    if reading.valid and reading.label != before[sample.pk]
                )
            passes.append(
                {"pass": number, "noisy": int(len(noisy_rows)), "relabelled": relabelled, "changed": changed}
            )
            LabellingRun.objects.filter(pk=run.pk).update(passes=passes)
            run.passes = passes
            run.report_progress(total=run.max_passes, done=number, invalid=run.invalid + invalid)
    except Exception as error:  # the run fails with a message; finished passes stay recorded
        logger.exception("refine run %s failed", run.pk)
        LabellingRun.objects.filter(pk=run.pk).update(passes=passes)
        run.mark_finished(JobStatus.FAILED, error=failure_text(error))
        return
    LabellingRun.objects.filter(pk=run.pk).update(passes=passes)
    run.passes = passes
    run.report_progress(total=run.max_passes, done=run.max_passes)
    relabelled = sum(row["relabelled"] for row in passes)
    changed = sum(row["changed"] for row in passes)
    offline = " (offline labeller)" if run.is_offline else ""
    run.mark_finished(
        JobStatus.SUCCEEDED,
        message=f"{len(passes)} pass{'es' if len(passes) != 1 else ''}{offline}: {relabelled} noisy items "
        f"re-labelled, {changed} changed. {stop_reason}",
    )
    if relabelled:
        signals_run_after_new_labels(project=run.project, user=run.created_by)
