"""Import a Label Studio JSON export into a project, all or nothing, in a worker.

The upload is stored on disk and a LabelStudioImportJob queued (`labelstudio_import_job_start`); the worker
parses the tasks and writes samples, human labels and predictions in one transaction together with the job's
success (`labelstudio_import_job_execute`), so a crash imports nothing and a re-run cannot import twice. The
opposite direction, a snapshot as Label Studio JSON, is one of the formats in evaluation.export.writers.
"""

from __future__ import annotations

import traceback
import uuid
from pathlib import Path

from django.conf import settings as django_settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotation.review.final_labels import final_labels_refresh_many
from evaluation.models import LabelStudioImportJob
from evaluation.tasks import labelstudio_import_task
from synthstudio.importing import JsonTooDeep, json_loads_bounded
from synthstudio.jobs import enqueue
from synthstudio.models import (
    HumanAnnotation,
    HumanSource,
    JobStatus,
    LabelMethod,
    LLMAnnotation,
    Project,
    Sample,
    text_hash,
)

# ------------------------------------------------------------------------------- the import job


def labelstudio_import_job_start(*, project: Project, user, upload: UploadedFile) -> LabelStudioImportJob:
    """Keep the upload on disk and let a worker import it (the request only copies bytes)."""
    folder = Path(django_settings.MEDIA_ROOT) / "imports" / "labelstudio" / f"project-{project.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.json"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    with transaction.atomic():
        job = LabelStudioImportJob.objects.create(
            project=project,
            created_by=user,
            original_name=(upload.name or "upload.json")[:300],
            stored_path=str(path),
            size_bytes=upload.size or 0,
            message="Waiting for a worker.",
        )
        enqueue(labelstudio_import_task, job.pk)
    return job


def labelstudio_import_job_execute(*, job: LabelStudioImportJob) -> LabelStudioImportJob:
    """All or nothing: the rows and the job's success commit in one transaction, so a crash imports nothing
    and a re-run cannot import twice. The stored upload is deleted once the job has ended."""
    job.mark_running()
    path = Path(job.stored_path)
    try:
        with path.open("rb") as handle:  # the upload was bounded by IMPORT_MAX_MB while it streamed in
            tasks = json_loads_bounded(handle.read())
        job.report_progress(total=len(tasks) if isinstance(tasks, list) else 0)
        with transaction.atomic():
            counts = labelstudio_import(project=job.project, tasks=tasks)
            job.counts = counts
            job.done = counts["tasks"]
            job.save(update_fields=["counts", "done"])
            job.mark_finished(
                JobStatus.SUCCEEDED,
                message=f"Imported {counts['tasks']} tasks, {counts['annotations']} human labels and "
                f"{counts['predictions']} predictions.",
            )
    except LabelStudioImportError as error:
        job.bad_task = error.position
        job.save(update_fields=["bad_task"])
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {error}")
    except JsonTooDeep as error:
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {error}.")
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        job.mark_finished(
            JobStatus.FAILED, error=f"Nothing was imported: the file is not valid JSON ({error})."
        )
    except Exception as error:
        traceback.print_exc()
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {type(error).__name__}: {error}")
    if job.is_finished:
        path.unlink(missing_ok=True)
    return job


# ------------------------------------------------------------------------------- parsing and writing the tasks


class LabelStudioImportError(ValueError):
    """A task that cannot be imported; `position` is its 1-based place in the file."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


def _task_name(position: int, task) -> str:
    """ "Task 3" or "Task 3 (id 1017)": the position to find it in the file, the id Label Studio shows."""
    task_id = task.get("id") if isinstance(task, dict) else None
    return (
        f"Task {position} (id {task_id})"
        if isinstance(task_id, int | str) and task_id != ""
        else f"Task {position}"
    )


def _choices(result: object) -> str:
    """The first choice in a Label Studio `result`; "" when there is none or the shape is not Label Studio's
    (the file is untrusted: a string or number where a list or object belongs must not crash the import)."""
    for region in result if isinstance(result, list) else []:
        value = region.get("value") if isinstance(region, dict) else None
        choices = value.get("choices") if isinstance(value, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], str | int | float):
            return str(choices[0])
    return ""


def _task_text(data: dict) -> str:
    if isinstance(data.get("text"), str):
        return data["text"]
    for value in data.values():
        if isinstance(value, str) and value.strip():
            return value
    return ""


def labelstudio_import(
    *, project: Project, tasks: list, label_names: list[str] | None = None
) -> dict[str, int]:
    """Import a Label Studio JSON export, all or nothing: each task becomes a sample, each non-cancelled
    annotation a human label (source imported), each prediction an imported LLM label with its score (the
    last prediction of a task is its current one). Rows are written in bulk; final labels are refreshed."""
    if not isinstance(tasks, list):
        raise LabelStudioImportError("A Label Studio export is a JSON array of tasks.")
    codebook = project.codebook
    names = list(label_names if label_names is not None else (codebook.label_names if codebook else []))
    parsed = [_labelstudio_task_parse(position, task, names) for position, task in enumerate(tasks, start=1)]
    with transaction.atomic():
        samples = Sample.objects.bulk_create(
            [
                Sample(
                    project=project,
                    text=text,
                    text_hash=text_hash(text),
                    provenance={"imported_from": "label_studio", "task_id": task_id},
                )
                for text, task_id, _, _ in parsed
            ],
            batch_size=1000,
        )
        human, llm = [], []
        for sample, (_, _, labels, predictions) in zip(samples, parsed, strict=True):
            human += [
                HumanAnnotation(sample=sample, codebook=codebook, source=HumanSource.IMPORTED, label=label)
                for label in labels
            ]
            llm += [
                LLMAnnotation(
                    sample=sample,
                    codebook=codebook,
                    method=LabelMethod.IMPORTED,
                    run_ref="label_studio",
                    is_current=index == len(predictions) - 1,
                    **prediction,
                )
                for index, prediction in enumerate(predictions)
            ]
        HumanAnnotation.objects.bulk_create(human, batch_size=1000)
        LLMAnnotation.objects.bulk_create(llm, batch_size=1000)
        final_labels_refresh_many(sample_ids=[sample.pk for sample in samples])
    return {"tasks": len(samples), "annotations": len(human), "predictions": len(llm)}


def _labelstudio_task_parse(
    position: int, task, names: list[str]
) -> tuple[str, object, list[str], list[dict]]:
    """(text, task id, human labels, LLMAnnotation field dicts) of one task, or LabelStudioImportError."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise LabelStudioImportError(f"{_task_name(position, task)} has no `data` object.", position=position)
    text = _task_text(task["data"])
    if not text:
        raise LabelStudioImportError(
            f"{_task_name(position, task)} has no text in `data`.", position=position
        )
    labels = [
        _choices(annotation.get("result"))
        for annotation in task.get("annotations") or []
        if isinstance(annotation, dict)
        and not annotation.get("was_cancelled")
        and _choices(annotation.get("result"))
    ]
    predictions = []
    for prediction in task.get("predictions") or []:
        label = _choices(prediction.get("result")) if isinstance(prediction, dict) else ""
        if not label:
            continue
        score = prediction.get("score")
        confidence = float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
        others = [name for name in names if name != label]
        distribution = {label: confidence if confidence is not None else 1.0}
        remainder = max(0.0, 1.0 - distribution[label])
        distribution.update({name: remainder / len(others) for name in others})
        predictions.append(
            {
                "label": label,
                "confidence": confidence,
                "distribution": distribution,
                "model_name": str(prediction.get("model_version") or "")[:200],
            }
        )
    return text, task.get("id"), labels, predictions
