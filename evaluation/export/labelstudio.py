"""Import another tool's export (Label Studio JSON, JSON_MIN or CSV; Prodigy or doccano JSONL; Argilla v2
records.json) into a project, all or nothing, in a worker.

The upload is stored on disk with the choices of the mapping step beside it (`<upload>.mapping.json`: which key
holds the text, the label, ...) and a LabelStudioImportJob queued (`labelstudio_import_job_start`). The worker
reads the file into Items (evaluation.interchange), then writes samples, human answers (with their annotators)
and LLM predictions in one transaction together with the job's success (`labelstudio_import_job_execute`), so
a crash imports nothing and a re-run cannot import twice. Texts already in the project (or earlier in the
file) are skipped and counted. The opposite direction is in evaluation.export.writers.
"""

from __future__ import annotations

import json
import traceback
import uuid
from pathlib import Path

from django.conf import settings as django_settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from annotation.review.final_labels import final_labels_refresh_many
from evaluation.interchange.formats import TOOLS, read_argilla, read_doccano, read_prodigy
from evaluation.interchange.items import InterchangeError, Item
from evaluation.interchange.labelstudio import (
    LabelStudioMapping,
    ReadResult,
    data_keys,
    export_variant,
    read_labelstudio,
)
from evaluation.models import LabelStudioImportJob
from evaluation.tasks import labelstudio_import_task
from synthstudio.importing import ImportFileError, JsonTooDeep, RowError, json_loads_bounded, read_records
from synthstudio.jobs import enqueue, failure_text
from synthstudio.models import (
    HumanAnnotation,
    HumanSource,
    JobStatus,
    LabelMethod,
    LLMAnnotation,
    Membership,
    Project,
    Sample,
    text_hash,
)

LabelStudioImportError = InterchangeError  # the name callers and tests know
PREVIEW_TASKS = 5
SOURCE = "label_studio"

# ------------------------------------------------------------------------------- the import job


def mapping_path(stored_path: str | Path) -> Path:
    return Path(f"{stored_path}.mapping.json")


def labelstudio_import_job_start(
    *, project: Project, user, upload: UploadedFile, mapping: LabelStudioMapping | None = None
) -> LabelStudioImportJob:
    """Keep the upload and the mapping on disk and let a worker import it (the request only copies bytes)."""
    folder = Path(django_settings.MEDIA_ROOT) / "imports" / "labelstudio" / f"project-{project.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    tool = (mapping or LabelStudioMapping()).tool
    suffix = {"csv": ".csv", "jsonl": ".jsonl"}.get(_reader_format(tool, upload.name or ""), ".json")
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    upload.seek(0)
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    mapping_path(path).write_text(json.dumps((mapping or LabelStudioMapping()).to_dict()), encoding="utf-8")
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


def _reader_format(tool: str, name: str) -> str:
    """How synthstudio.importing reads the file: Prodigy and doccano write JSONL, Label Studio CSV or JSON."""
    if tool in {"prodigy", "doccano"}:
        return "jsonl"
    return "csv" if tool == "labelstudio" and name.lower().endswith((".csv", ".tsv")) else "json"


def labelstudio_records(path: Path, tool: str = "labelstudio") -> tuple[list, str]:
    """(records, variant) of a stored export, read with the bounded readers of synthstudio.importing."""
    reader = _reader_format(tool, path.name)
    if reader != "json":
        with path.open("rb") as handle:
            records = [record.values for record in read_records(handle, reader)]
        return records, ("CSV" if reader == "csv" else tool)
    with path.open("rb") as handle:  # the upload was bounded by IMPORT_MAX_MB while it streamed in
        records = json_loads_bounded(handle.read())
    return records, (export_variant(records) if tool == "labelstudio" else tool)


def labelstudio_preview(upload: UploadedFile, tool: str = "labelstudio") -> dict:
    """What the mapping step shows before anything is stored: the variant, the keys found and the first
    tasks; `error` when the file cannot be read at all. Reads the first PREVIEW_TASKS records only."""
    upload.seek(0)
    reader = _reader_format(tool, upload.name or "")
    try:
        records = [
            record.values
            for _, record in zip(range(PREVIEW_TASKS), read_records(upload.file, reader), strict=False)
        ]
    except (ImportFileError, RowError) as error:
        formats = TOOLS.get(tool, "Label Studio's JSON, JSON_MIN and CSV exports")
        return {
            "variant": "",
            "keys": [],
            "tasks": [],
            "error": f"Nothing was imported: {error} Expected: {formats}.",
        }
    finally:
        upload.seek(0)
    if tool != "labelstudio":
        variant = tool
    else:
        variant = "CSV" if reader == "csv" else export_variant(records)
    keys = data_keys(records, variant="JSON" if variant == "JSON" else "flat")
    return {"variant": variant, "keys": keys, "tasks": records, "error": ""}


def read_items(
    records: list, *, variant: str, mapping: LabelStudioMapping, label_names: list[str]
) -> ReadResult:
    """Items from a decoded file of any supported tool (InterchangeError names the record)."""
    if variant == "prodigy":
        items, not_imported = read_prodigy(records, label_names=label_names)
        return ReadResult(items, variant, not_imported=not_imported)
    if variant == "doccano":
        return ReadResult(read_doccano(records, label_names=label_names), variant)
    if variant == "argilla":
        if not isinstance(records, list):
            raise InterchangeError("An Argilla records.json is a JSON array of records.")
        items = read_argilla(
            records, label_names=label_names, text_field=mapping.text_key, question=mapping.label_key
        )
        return ReadResult(items, variant)
    return read_labelstudio(records, variant=variant, mapping=mapping, label_names=label_names)


def labelstudio_preview_check(*, project: Project, upload: UploadedFile, mapping: LabelStudioMapping) -> dict:
    """The preview with `error` set when its first tasks cannot be imported with this mapping (no text under
    the text key, a label outside the codebook, predictions as ids only, ...): the page shows the error, the
    keys found and the tasks, and the lead picks the key. The worker still checks every task."""
    preview = labelstudio_preview(upload, mapping.tool)
    if preview["error"] or not preview["tasks"]:
        return preview
    codebook = project.codebook
    try:
        read_items(
            preview["tasks"],
            variant=preview["variant"],
            mapping=mapping,
            label_names=codebook.label_names if codebook else [],
        )
    except InterchangeError as error:
        preview["error"] = (
            f"Nothing was imported: {error} (checked on the first {len(preview['tasks'])} tasks; nothing was stored)"
        )
    return preview


def labelstudio_import_job_execute(*, job: LabelStudioImportJob) -> LabelStudioImportJob:
    """All or nothing: the rows and the job's success commit in one transaction, so a crash imports nothing
    and a re-run cannot import twice. The stored upload is deleted once the job has ended."""
    job.mark_running()
    path = Path(job.stored_path)
    try:
        options = mapping_path(path)
        mapping = LabelStudioMapping.from_dict(
            json.loads(options.read_text(encoding="utf-8")) if options.exists() else {}
        )
        records, variant = labelstudio_records(path, mapping.tool)
        job.report_progress(total=len(records))
        with transaction.atomic():
            counts = labelstudio_import(project=job.project, tasks=records, variant=variant, mapping=mapping)
            job.counts = counts
            job.done = counts["tasks"]
            job.save(update_fields=["counts", "done"])
            job.mark_finished(JobStatus.SUCCEEDED, message=import_message(counts, variant))
    except InterchangeError as error:
        job.bad_task = error.position
        job.save(update_fields=["bad_task"])
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {error}")
    except (ImportFileError, RowError) as error:
        job.mark_finished(
            JobStatus.FAILED, error=f"Nothing was imported: the CSV export cannot be read ({error})."
        )
    except JsonTooDeep as error:
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {error}.")
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        job.mark_finished(
            JobStatus.FAILED,
            error="Nothing was imported: the file is not valid JSON "
            f"({error}); Label Studio's JSON, JSON_MIN and CSV exports can be imported.",
        )
    except Exception as error:
        traceback.print_exc()
        job.mark_finished(JobStatus.FAILED, error=f"Nothing was imported: {failure_text(error)}")
    if job.is_finished:
        path.unlink(missing_ok=True)
        mapping_path(path).unlink(missing_ok=True)
    return job


def import_message(counts: dict[str, int], variant: str) -> str:
    origin = TOOLS.get(variant, f"Label Studio {variant}")
    message = (
        f"Imported {counts['tasks']} tasks from {origin}, {counts['annotations']} human labels "
        f"and {counts['predictions']} predictions."
    )
    if counts.get("not_imported"):
        message += (
            f" {counts['not_imported']} rejected or ignored binary answers were not imported (a single-label "
            "codebook has no place for “not this label”)."
        )
    if counts.get("duplicates"):
        message += f" {counts['duplicates']} tasks skipped: their text is already in the project or earlier in the file."
    if counts.get("prediction_ids_skipped"):
        message += (
            f" {counts['prediction_ids_skipped']} predictions listed as ids only were not imported (the file "
            "has no labels for them)."
        )
    return message


# ------------------------------------------------------------------------------- writing the items


def labelstudio_import(
    *,
    project: Project,
    tasks: list,
    variant: str = "",
    mapping: LabelStudioMapping | None = None,
    label_names: list[str] | None = None,
) -> dict[str, int]:
    """Read a decoded export (Label Studio's by default, another tool's by `variant`) and import it, all or
    nothing (InterchangeError names the task)."""
    mapping = mapping or LabelStudioMapping()
    codebook = project.codebook
    names = list(label_names if label_names is not None else (codebook.label_names if codebook else []))
    if not variant:
        variant = export_variant(tasks) if mapping.tool == "labelstudio" else mapping.tool
    result = read_items(tasks, variant=variant, mapping=mapping, label_names=names)
    source = SOURCE if mapping.tool == "labelstudio" else mapping.tool
    counts = items_import(project=project, items=result.items, source=source)
    counts["prediction_ids_skipped"] = result.prediction_ids_skipped
    counts["not_imported"] = result.not_imported
    return counts


def _members_by_name(project: Project) -> dict[str, object]:
    """The project's members by email and by username (case-insensitive): how files name annotators."""
    users: dict[str, object] = {}
    for membership in Membership.objects.filter(project=project).select_related("user"):
        user = membership.user
        if user.username:
            users.setdefault(user.username.casefold(), user)
        if user.email:
            users.setdefault(user.email.casefold(), user)
    return users


def items_import(*, project: Project, items: list[Item], source: str) -> dict[str, int]:
    """Write Items as samples, human answers and LLM labels in one transaction. A text already in the project
    or earlier in the file is skipped and counted. Annotators are matched to members by email or username;
    one the project does not know keeps their name in the sample's provenance (`external_annotators`, by
    answer id). lead_time becomes seconds_spent, a ground-truth answer an adjudication; split and weight go in
    provenance."""
    codebook = project.codebook
    members = _members_by_name(project)
    with transaction.atomic():
        hashes = [text_hash(item.text) for item in items]
        seen: set[str] = set()
        unique = sorted(set(hashes))
        for start in range(0, len(unique), 1000):
            seen.update(
                Sample.objects.filter(project=project, text_hash__in=unique[start : start + 1000])
                .order_by()
                .values_list("text_hash", flat=True)
            )
        kept: list[tuple[str, Item]] = []
        for digest, item in zip(hashes, items, strict=True):
            if digest not in seen:
                seen.add(digest)
                kept.append((digest, item))
        samples = Sample.objects.bulk_create(
            [
                Sample(
                    project=project,
                    text=item.text,
                    text_hash=digest,
                    fields=item.fields,
                    provenance=_provenance(item, source),
                )
                for digest, item in kept
            ],
            batch_size=1000,
        )
        human, external, llm = [], [], []
        for sample, (_, item) in zip(samples, kept, strict=True):
            for answer in item.answers:
                user = members.get(answer.annotator.casefold()) if answer.annotator else None
                human.append(
                    HumanAnnotation(
                        sample=sample,
                        codebook=codebook,
                        annotator=user,
                        source=HumanSource.ADJUDICATION if answer.adjudicated else HumanSource.IMPORTED,
                        label=answer.label,
                        seconds_spent=answer.lead_time,
                    )
                )
                external.append(answer.annotator if user is None and answer.annotator else "")
            for index, prediction in enumerate(item.predictions):
                confidence = prediction.confidence
                if confidence is None and prediction.distribution:
                    confidence = prediction.distribution.get(prediction.label)
                llm.append(
                    LLMAnnotation(
                        sample=sample,
                        codebook=codebook,
                        label=prediction.label,
                        distribution=prediction.distribution,
                        confidence=confidence,
                        model_name=prediction.model_name[:200],
                        method=LabelMethod.IMPORTED,
                        run_ref=source,
                        is_current=index == len(item.predictions) - 1,
                    )
                )
        HumanAnnotation.objects.bulk_create(human, batch_size=1000)
        LLMAnnotation.objects.bulk_create(llm, batch_size=1000)
        named: dict[int, Sample] = {}
        for answer_row, name in zip(human, external, strict=True):
            if name:
                sample = answer_row.sample
                sample.provenance.setdefault("external_annotators", {})[str(answer_row.pk)] = name
                named[sample.pk] = sample
        Sample.objects.bulk_update(list(named.values()), ["provenance"], batch_size=1000)
        final_labels_refresh_many(sample_ids=[sample.pk for sample in samples])
    return {
        "tasks": len(samples),
        "duplicates": len(items) - len(samples),
        "annotations": len(human),
        "annotators_matched": sum(1 for row in human if row.annotator_id is not None),
        "annotators_external": sum(1 for name in external if name),
        "predictions": len(llm),
    }


def _provenance(item: Item, source: str) -> dict:
    provenance: dict = {"imported_from": source}
    if item.external_id not in (None, ""):
        provenance["task_id"] = item.external_id
    if item.split:
        provenance["split"] = item.split
    if item.weight is not None:
        provenance["weight"] = item.weight
    if item.original_text:
        provenance["original_text"] = item.original_text
    if item.provenance:
        provenance["source_provenance"] = item.provenance
    return provenance
