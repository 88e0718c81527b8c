"""Cross-model workflows of the core: projects, members, codebook versions, import."""

from __future__ import annotations

import logging
import pickle
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import reset_queries, transaction
from django.db.models import Max
from django.dispatch import Signal

from synthstudio import importing
from synthstudio.bulk_insert import ids_by_key, insert_rows, json_value
from synthstudio.jobs import enqueue
from synthstudio.models import (
    Codebook,
    FinalSource,
    HumanAnnotation,
    HumanSource,
    ImportJob,
    JobStatus,
    Label,
    LabelMethod,
    LLMAnnotation,
    Membership,
    Origin,
    Project,
    Role,
    Sample,
    text_hash,
)
from synthstudio.uploads import upload_limit_message

logger = logging.getLogger(__name__)


def project_create(*, name: str, description: str = "", user: AbstractBaseUser) -> Project:
    """Create a project with its creator as lead."""
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description, created_by=user)
        Membership.objects.create(project=project, user=user, role=Role.LEAD)
    return project


LAST_LEAD_MESSAGE = (
    "A project keeps at least one lead: make someone else lead before demoting or removing the last one."
)


def _lock_leads(project: Project) -> list[Membership]:
    """Lock the project's lead rows (in pk order, so two leads demoting each other at once queue instead of
    deadlocking), so that the last-lead check and the change are one step on PostgreSQL too."""
    return list(Membership.objects.select_for_update().filter(project=project, role=Role.LEAD).order_by("pk"))


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add a member or change a role. Raises ValidationError when it would demote the project's last lead."""
    with transaction.atomic():
        leads = _lock_leads(project)
        if role != Role.LEAD and [lead.user_id for lead in leads] == [user.pk]:
            raise ValidationError(LAST_LEAD_MESSAGE, code="last_lead")
        membership, _ = Membership.objects.update_or_create(
            project=project, user=user, defaults={"role": role}
        )
    return membership


def membership_remove(*, project: Project, membership: Membership) -> None:
    """Remove a member. Raises ValidationError when it is the project's last lead."""
    with transaction.atomic():
        leads = _lock_leads(project)
        if [lead.pk for lead in leads] == [membership.pk]:
            raise ValidationError(LAST_LEAD_MESSAGE, code="last_lead")
        Membership.objects.filter(pk=membership.pk, project=project).delete()


def codebook_create_version(
    *, project: Project, user, task_description: str, guidelines: str, labels: list[dict]
) -> Codebook:
    """Write a new codebook version with its labels. labels: [{name, description, examples, hotkey}]."""
    with transaction.atomic():
        latest = (
            Codebook.objects.select_for_update().filter(project=project).aggregate(v=Max("version"))["v"] or 0
        )
        codebook = Codebook.objects.create(
            project=project,
            version=latest + 1,
            task_description=task_description,
            guidelines=guidelines,
            created_by=user,
        )
        Label.objects.bulk_create(
            Label(
                codebook=codebook,
                name=item["name"],
                description=item.get("description", ""),
                examples=list(item.get("examples", [])),
                hotkey=item.get("hotkey", "") or (str(index + 1) if index < 9 else ""),
                order=index,
            )
            for index, item in enumerate(labels)
        )
    return codebook


# ---------------------------------------------------------------------------------------------- import

IMPORT_BATCH_ROWS = 1000
IMPORT_PROGRESS_EVERY = 5000

# Sent by the import task (synthstudio.tasks.import_file) in the worker once an import succeeded, with job=
# (an ImportJob): the apps above this one act on the new samples without this app importing them
# (annotation.apps connects the routing signals run, so Labelling's charts and routing need no button).
samples_imported = Signal()


class ImportRefused(Exception):
    """An upload that is not stored (too big, unknown format); the message is shown to the lead."""


def import_limit_message(size_bytes: int) -> str:
    return upload_limit_message(size_bytes)


def import_create(*, project: Project, user, upload: UploadedFile, file_format: str = "") -> ImportJob:
    """Store an upload under var/imports/ (streamed in chunks, refused past IMPORT_MAX_BYTES) and make its job.
    The job waits for a column mapping (import_start) before anything is parsed.

    A file whose first rows break a content limit (a million-column header, a line over MAX_LINE_BYTES, JSON
    nested too deep) is refused here and never stored: its preview could not be shown anyway."""
    if upload.size is not None and upload.size > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(import_limit_message(upload.size))
    try:
        file_format = file_format or importing.detect_format(upload.name or "")
    except importing.ImportFileError as error:
        raise ImportRefused(str(error)) from None
    upload.seek(0)
    preview = importing.preview_records(upload.file, file_format)
    if preview.over_limit:
        raise ImportRefused(preview.error)
    folder = Path(settings.VAR_DIR) / "imports" / str(project.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.{file_format}"
    written = 0
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > settings.IMPORT_MAX_BYTES:
                out.close()
                path.unlink(missing_ok=True)
                raise ImportRefused(import_limit_message(written))
            out.write(chunk)
    return ImportJob.objects.create(
        project=project,
        created_by=user,
        original_name=(upload.name or "upload")[:300],
        stored_path=str(path),
        file_format=file_format,
        size_bytes=written,
        message="Waiting for a column mapping.",
    )


def import_preview(*, job: ImportJob, limit: int = 10) -> importing.Preview:
    with open(job.stored_path, "rb") as stream:
        return importing.preview_records(stream, job.file_format, limit=limit)


def import_start(*, job: ImportJob, mapping: importing.ColumnMapping) -> ImportJob:
    """Fix the mapping and the codebook version, then run the import in a worker."""
    from synthstudio.tasks import import_file

    with transaction.atomic():
        job.mapping = mapping.to_dict()
        job.codebook = job.project.codebook
        job.status = JobStatus.QUEUED
        job.message = "Queued."
        job.save(update_fields=["mapping", "codebook", "status", "message"])
        enqueue(import_file, job.id)
    return job


def import_run(*, job: ImportJob) -> ImportJob:
    """Check every row (streaming), then insert them all in one transaction, or nothing.

    Pass 1 parses the whole file and stops at the first bad row: the job fails naming the row and why, and
    the database is untouched. The parsed rows are spooled to a temporary file batch by batch (memory stays
    flat). Pass 2 reads the spool and inserts in batches of IMPORT_BATCH_ROWS inside ONE transaction; exact
    duplicates (same text as a sample already in the project or earlier in the file) are skipped and
    counted. The job's final state is written in that same transaction, so a re-delivered task sees a
    finished job and does nothing.
    """
    if job.is_finished:
        return job
    job.mark_running()
    label_names = list(job.codebook.labels.values_list("name", flat=True)) if job.codebook else []
    with tempfile.TemporaryFile(prefix=f"import-{job.id}-") as spool:
        try:
            parser = importing.RowParser(importing.ColumnMapping.from_dict(job.mapping), label_names)
            rows = _import_check(job=job, parser=parser, spool=spool)
        except importing.RowError as error:
            job.bad_row, job.message = error.row, ""
            job.save(update_fields=["bad_row", "message"])
            job.mark_finished(JobStatus.FAILED, error=_nothing_imported(error))
            return job
        except (importing.ImportFileError, OSError) as error:
            job.message = ""
            job.mark_finished(JobStatus.FAILED, error=_nothing_imported(error))
            return job

        # total=0 while writing: the bar turns indeterminate, as progress inside the one transaction is invisible.
        job.message = f"All {rows:,} rows are valid; writing them in one transaction (all or nothing)."
        job.report_progress(done=rows, total=0)
        spool.seek(0)
        try:
            _import_write(job=job, spool=spool, rows=rows)
        except SoftTimeLimitExceeded:  # rolled back too; jobs.run_job fails the job saying it took too long
            raise
        except Exception as error:  # the transaction rolled back: say so instead of leaving the job "running"
            logger.exception("Import %s failed while writing", job.id)
            job.message = ""
            job.mark_finished(JobStatus.FAILED, error=f"Writing failed: {error}. Nothing was imported.")
    return job


def _nothing_imported(error: Exception) -> str:
    reason = str(error).rstrip()
    return f"{reason}{'' if reason.endswith(('.', '!', '?')) else '.'} Nothing was imported."


def _import_check(*, job: ImportJob, parser: importing.RowParser, spool: BinaryIO) -> int:
    """Pass 1: parse every row (RowError on the first bad one), spooling parsed batches; returns the count."""
    rows = 0
    with open(job.stored_path, "rb") as stream:
        for batch in importing.batched(
            importing.parse_file(stream, job.file_format, parser), IMPORT_BATCH_ROWS
        ):
            pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
            previous, rows = rows, rows + len(batch)
            if rows // IMPORT_PROGRESS_EVERY != previous // IMPORT_PROGRESS_EVERY:
                # The row count is unknown until the end: estimate it from the share of the file read so far.
                share_read = stream.tell() / job.size_bytes if job.size_bytes else 0
                estimated_total = max(rows, round(rows / share_read)) if share_read else 0
                job.message = f"Checking rows: {rows:,} valid so far."
                job.report_progress(done=rows, total=estimated_total)
    if rows == 0:
        raise importing.ImportFileError("The file holds no rows.")
    return rows


def _spooled_batches(spool: BinaryIO) -> Iterator[list[importing.ParsedRow]]:
    while True:
        try:
            yield pickle.load(spool)  # our own temporary file, written by _import_check just before
        except EOFError:
            return


def _import_write(*, job: ImportJob, spool: BinaryIO, rows: int) -> None:
    """Pass 2: insert the spooled rows and finish the job, all in one transaction."""
    with transaction.atomic():
        imported = duplicates = 0
        for batch in _spooled_batches(spool):
            reset_queries()  # with DEBUG on, Django keeps every SQL text; ours carry 1,000 hashes each
            kept = _import_batch(job=job, codebook=job.codebook, batch=batch)
            imported += kept
            duplicates += len(batch) - kept
        job.imported, job.duplicates = imported, duplicates
        job.done, job.total = rows, rows
        job.save(update_fields=["imported", "duplicates", "done", "total"])
        skipped = (
            f"; {duplicates:,} exact duplicate{'' if duplicates == 1 else 's'} skipped (same text as a sample "
            "already in the project or earlier in the file)"
            if duplicates
            else ""
        )
        job.mark_finished(
            JobStatus.SUCCEEDED,
            message=f"Imported {imported:,} sample{'' if imported == 1 else 's'}{skipped}.",
        )


def _import_batch(*, job: ImportJob, codebook: Codebook | None, batch: list[importing.ParsedRow]) -> int:
    """Insert one batch (samples, then their annotations); returns how many samples were new."""
    hashes = [text_hash(row.text) for row in batch]
    # Rows inserted by earlier batches are visible inside the transaction, so this also catches in-file repeats.
    # No ORDER BY: with Sample's default ordering SQLite walks the project_id index over every sample of the
    # project (quadratic over an import) instead of the covering (project, text_hash) index.
    project_samples = Sample.objects.filter(project_id=job.project_id).order_by()
    seen = set(project_samples.filter(text_hash__in=set(hashes)).values_list("text_hash", flat=True))
    kept: list[tuple[str, importing.ParsedRow]] = []
    for row, digest in zip(batch, hashes, strict=True):
        if digest not in seen:
            seen.add(digest)
            kept.append((digest, row))
    # Provenance differs only in the row number: format it instead of dumping a dict per row.
    provenance_prefix = f'{{"import_job": {job.id}, "file": {json_value(job.original_name)}, "row": '
    insert_rows(
        Sample,
        ["project_id", "text", "text_hash", "fields", "origin", "provenance", "final_label", "final_source", "final_weight"],
        (
            (
                job.project_id, row.text, digest, json_value(row.fields) if row.fields else "{}", Origin.IMPORTED,
                f"{provenance_prefix}{row.row}}}",
                *_imported_final_label(row),
            )
            for digest, row in kept
        ),
    )  # fmt: skip
    # text_hash is unique among these rows (duplicates were skipped), so it finds their new ids.
    sample_ids = ids_by_key(project_samples, "text_hash", (digest for digest, _ in kept))
    codebook_id = codebook.id if codebook else None
    run_ref = f"import:{job.id}"
    insert_rows(
        LLMAnnotation,
        ["sample_id", "codebook_id", "label", "distribution", "confidence", "method", "run_ref"],
        (
            (sample_ids[digest], codebook_id, row.llm_label, json_value(row.llm_distribution), row.llm_confidence,
             LabelMethod.IMPORTED, run_ref)
            for digest, row in kept
            if row.llm_label
        ),
    )  # fmt: skip
    insert_rows(
        HumanAnnotation,
        ["sample_id", "codebook_id", "source", "label"],
        (
            (sample_ids[digest], codebook_id, HumanSource.IMPORTED, row.gold_label)
            for digest, row in kept
            if row.gold_label
        ),
    )
    return len(kept)


def _imported_final_label(row: importing.ParsedRow) -> tuple[str, str, float]:
    """The final-label rule (annotation.final_labels) for a fresh sample: its one imported human label wins
    with weight 1.0; otherwise the LLM label weighs its confidence (0.5 when unknown)."""
    if row.gold_label:
        return row.gold_label, FinalSource.HUMAN, 1.0
    if row.llm_label:
        confidence = row.llm_confidence if row.llm_confidence is not None else 0.5
        return row.llm_label, FinalSource.LLM, confidence
    return "", FinalSource.NONE, 0.0
