"""Export a snapshot: JSONL, CSV, Parquet, a Hugging Face datasets folder as a zip, Label Studio JSON (the
Label Studio import is evaluation.export.labelstudio).

Text formats are generators of bytes for StreamingHttpResponse; Parquet and the HF folder are written to a
file in row batches. Every writer reads the snapshot's stored rows through snapshot_rows (chunked), so memory
stays flat however big the snapshot is. Snapshots never change, so a written file is kept and reused.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from evaluation.curation.snapshots import certificate_figures, snapshot_rows, snapshot_splits
from evaluation.curation.weights import weights_sentence
from evaluation.interchange.formats import (
    argilla_record,
    argilla_settings,
    doccano_line,
    prodigy_lines,
)
from evaluation.interchange.items import Answer, Prediction
from evaluation.interchange.labelstudio import LabelingConfig, labelstudio_task
from evaluation.models import ExportFormat, Snapshot
from synthstudio.csv_safety import csv_writer
from synthstudio.models import HumanAnnotation, HumanSource, LLMAnnotation, Sample

PARQUET_BATCH = 5000
# where the snapshot's label certificate (JSON) sits in a Parquet file's key-value metadata and in the HF folder
CERTIFICATE_METADATA_KEY = "synthstudio.certificate"
CERTIFICATE_FILENAME = "certificate.json"
FLAT_COLUMNS = (
    "id",
    "text",
    "label",
    "label_source",
    "weight",
    "split",
    "llm_label",
    "llm_confidence",
    "origin",
    "fields",
    "provenance",
    "original_text",  # last: files read by column position before corrections existed keep working
)
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("label_source", pa.string()),
        ("weight", pa.float64()),
        ("split", pa.string()),
        ("llm_label", pa.string()),
        ("llm_confidence", pa.float64()),
        ("origin", pa.string()),
        ("fields", pa.string()),  # JSON text: per-project keys vary, a fixed column type keeps files loadable
        ("provenance", pa.string()),
        ("original_text", pa.string()),  # null when the text was not corrected
    ]
)
CONTENT_TYPES = {
    ExportFormat.JSONL: "application/jsonl",
    ExportFormat.CSV: "text/csv",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.HF: "application/zip",
    ExportFormat.LABEL_STUDIO: "application/json",
}
EXTENSIONS = {
    ExportFormat.JSONL: "jsonl",
    ExportFormat.CSV: "csv",
    ExportFormat.PARQUET: "parquet",
    ExportFormat.HF: "zip",
    ExportFormat.LABEL_STUDIO: "json",
}
STREAMED_FORMATS = {ExportFormat.JSONL, ExportFormat.CSV, ExportFormat.LABEL_STUDIO}


def flat_row(row: dict) -> dict:
    """A stored row as exported: nested JSON columns as JSON text (CSV/Parquet) and `id` for the sample.
    `text` is the current (lead-accepted corrected) text, `original_text` the text before the correction:
    None when uncorrected (null in JSONL/Parquet/HF, an empty cell in CSV)."""
    return {
        "id": row["sample_ref"],
        "text": row["text"],
        "original_text": row["original_text"],
        "label": row["label"],
        "label_source": row["label_source"],
        "weight": row["weight"],
        "split": row["split"],
        "llm_label": row["llm_label"],
        "llm_confidence": row["llm_confidence"],
        "origin": row["origin"],
        "fields": json.dumps(row["fields"] or {}, ensure_ascii=False, sort_keys=True),
        "provenance": json.dumps(row["provenance"] or {}, ensure_ascii=False, sort_keys=True),
    }


def jsonl_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    buffer: list[str] = []
    for row in snapshot_rows(snapshot, split=split):
        record = flat_row(row)
        record["fields"], record["provenance"] = row["fields"] or {}, row["provenance"] or {}
        buffer.append(json.dumps(record, ensure_ascii=False))
        if len(buffer) >= 1000:
            yield ("\n".join(buffer) + "\n").encode("utf-8")
            buffer = []
    if buffer:
        yield ("\n".join(buffer) + "\n").encode("utf-8")


def csv_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """Spreadsheet-safe CSV: texts that a spreadsheet would run as a formula get a leading ' (csv_safety)."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(FLAT_COLUMNS)
    for count, row in enumerate(snapshot_rows(snapshot, split=split), start=1):
        flat = flat_row(row)
        writer.writerow([flat[column] for column in FLAT_COLUMNS])
        if count % 1000 == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


def labelling_config(snapshot: Snapshot) -> LabelingConfig:
    """The Label Studio labeling config for a snapshot: its codebook's labels (in order, with hotkeys)."""
    hotkeys = {}
    if snapshot.codebook_id:
        hotkeys = dict(snapshot.codebook.labels.values_list("name", "hotkey"))
    names = list(snapshot.label_names or [])
    return LabelingConfig(
        labels=tuple((name, hotkeys.get(name, "")) for name in names),
        instructions=snapshot.codebook.task_description if snapshot.codebook_id else "",
    )


def labelstudio_config_xml(snapshot: Snapshot) -> str:
    """The labeling config; with a label certificate its statement as an XML comment at the top, where the
    Label Studio project's settings show it (Label Studio keeps no other project-level metadata on import)."""
    xml = labelling_config(snapshot).xml()
    if snapshot.certificate:
        # "--" may not appear inside an XML comment
        statement = snapshot.certificate["statement"].replace("--", "- -")
        comment = f"<!-- synthstudio label certificate of snapshot v{snapshot.version}: {statement} -->"
        xml = xml.replace("<View>", f"<View>\n  {comment}", 1)
    return xml


def _answers_and_predictions(sample_ids: list[int]) -> tuple[dict[int, list[Answer]], dict[int, Prediction]]:
    """Every labelled human answer (oldest first, with its annotator's email, username or external name)
    and the current valid LLM label of these samples: what a snapshot row alone does not keep."""
    answers: dict[int, list[Answer]] = {}
    external = {
        sample_id: (provenance or {}).get("external_annotators") or {}
        for sample_id, provenance in Sample.objects.filter(pk__in=sample_ids).values_list("pk", "provenance")
    }
    rows = (
        HumanAnnotation.objects.filter(sample_id__in=sample_ids)
        .exclude(label="")
        .order_by("created_at", "id")
        .values_list(
            "id", "sample_id", "label", "source", "seconds_spent", "annotator__email", "annotator__username"
        )
    )
    for pk, sample_id, label, source, seconds, email, username in rows:
        name = email or username or str(external.get(sample_id, {}).get(str(pk), ""))
        answers.setdefault(sample_id, []).append(
            Answer(
                label=label, annotator=name, lead_time=seconds, adjudicated=source == HumanSource.ADJUDICATION
            )
        )
    predictions = {
        sample_id: Prediction(
            label=label,
            distribution=distribution or {},
            confidence=confidence,
            model_name=model,
            method=method,
        )
        for sample_id, label, distribution, confidence, model, method in LLMAnnotation.objects.filter(
            sample_id__in=sample_ids, is_current=True, valid=True
        ).values_list("sample_id", "label", "distribution", "confidence", "model_name", "method")
    }
    return answers, predictions


def interchange_rows(
    snapshot: Snapshot, *, split: str | None = None, batch: int = 500
) -> Iterator[tuple[dict, list[Answer], Prediction | None]]:
    """(row, human answers, LLM prediction) for the snapshot's rows, what every other tool's format is written
    from. Rows are frozen; each row's answers with their annotators and the LLM's model and full distribution
    are read from its sample (batch by batch) when it still exists, else the row's own label and LLM label
    stand in."""
    rows = snapshot_rows(snapshot, split=split)
    while chunk := list(itertools.islice(rows, batch)):
        answers, predictions = _answers_and_predictions([row["sample_ref"] for row in chunk])
        for row in chunk:
            ref = row["sample_ref"]
            prediction = predictions.get(ref)
            if prediction is None and row["llm_label"]:
                prediction = Prediction(label=row["llm_label"], confidence=row["llm_confidence"])
            row_answers = answers.get(ref)
            if row_answers is None and row["label_source"] in {"human", "adjudicated"}:
                row_answers = [Answer(label=row["label"], adjudicated=row["label_source"] == "adjudicated")]
            yield row, row_answers or [], prediction


def _row_meta(snapshot: Snapshot, row: dict) -> dict:
    return {
        "snapshot": snapshot.version,
        "synthstudio_id": row["sample_ref"],
        "label": row["label"],
        "label_source": row["label_source"],
        "split": row["split"],
        "weight": row["weight"],
        "origin": row["origin"],
        "fields": row["fields"] or {},
        "provenance": row["provenance"] or {},
        "original_text": row.get("original_text"),
    }


def labelstudio_tasks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[dict]:
    config = labelling_config(snapshot)
    for row, answers, prediction in interchange_rows(snapshot, split=split):
        task = labelstudio_task(
            config=config,
            sample_ref=row["sample_ref"],
            text=row["text"],
            fields=row["fields"] or {},
            split=row["split"],
            weight=row["weight"],
            answers=answers,
            prediction=prediction,
            summary={
                "snapshot": snapshot.version,
                "label": row["label"],
                "label_source": row["label_source"],
                "origin": row["origin"],
                "provenance": row["provenance"] or {},
            },
        )
        task["data"]["original_text"] = row["original_text"]  # the text before a correction, else None
        yield task


def _json_lines(records: Iterator[dict]) -> Iterator[bytes]:
    buffer: list[str] = []
    for record in records:
        buffer.append(json.dumps(record, ensure_ascii=False))
        if len(buffer) >= 1000:
            yield ("\n".join(buffer) + "\n").encode("utf-8")
            buffer = []
    if buffer:
        yield ("\n".join(buffer) + "\n").encode("utf-8")


def _json_array(records: Iterator[dict]) -> Iterator[bytes]:
    yield b"["
    for index, record in enumerate(records):
        yield (b"," if index else b"") + json.dumps(record, ensure_ascii=False).encode("utf-8")
    yield b"]\n"


def prodigy_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """Prodigy JSONL (`prodigy db-in` reads it): a choice task per human answer."""
    names = list(snapshot.label_names or [])
    return _json_lines(
        line
        for row, answers, prediction in interchange_rows(snapshot, split=split)
        for line in prodigy_lines(
            text=row["text"],
            label_names=names,
            answers=answers,
            prediction=prediction,
            meta=_row_meta(snapshot, row),
        )
    )


def doccano_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """doccano text classification JSONL: the final label per text."""
    return _json_lines(
        doccano_line(
            sample_ref=row["sample_ref"], text=row["text"], label=row["label"], meta=_row_meta(snapshot, row)
        )
        for row in snapshot_rows(snapshot, split=split)
    )


def argilla_records_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """Argilla v2 records.json (what `rg.Dataset.to_disk` writes; settings.json is its own download)."""
    return _json_array(
        argilla_record(
            sample_ref=row["sample_ref"], text=row["text"], answers=answers, prediction=prediction,
            meta=_row_meta(snapshot, row),
        )
        for row, answers, prediction in interchange_rows(snapshot, split=split)
    )  # fmt: skip


def argilla_settings_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    guidelines = snapshot.codebook.guidelines if snapshot.codebook_id else ""
    settings_json = argilla_settings(label_names=list(snapshot.label_names or []), guidelines=guidelines)
    if snapshot.certificate:  # Argilla reads the keys it knows and ignores this one
        settings_json["synthstudio_certificate"] = snapshot.certificate
    yield json.dumps(settings_json, ensure_ascii=False, indent=2).encode("utf-8")


def labelstudio_config_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    yield labelstudio_config_xml(snapshot).encode("utf-8")


# Other tools' files, streamed beside the snapshot's export formats: name -> (writer, content type, file name end)
INTERCHANGE_DOWNLOADS: dict[str, tuple[Callable[..., Iterator[bytes]], str, str]] = {
    "labelstudio-config": (labelstudio_config_chunks, "application/xml", "labelstudio-config.xml"),
    "prodigy": (prodigy_chunks, "application/jsonl", "prodigy.jsonl"),
    "doccano": (doccano_chunks, "application/jsonl", "doccano.jsonl"),
    "argilla-records": (argilla_records_chunks, "application/json", "argilla-records.json"),
    "argilla-settings": (argilla_settings_chunks, "application/json", "argilla-settings.json"),
}


def labelstudio_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """A JSON array of tasks, streamed one task at a time (the labeling config is a separate download)."""
    yield b"["
    for index, task in enumerate(labelstudio_tasks(snapshot, split=split)):
        prefix = b"," if index else b""
        yield prefix + json.dumps(task, ensure_ascii=False).encode("utf-8")
    yield b"]\n"


def parquet_write(
    snapshot: Snapshot, path: Path, *, split: str | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Write the rows to a Parquet file in batches of PARQUET_BATCH rows; returns the row count. The
    snapshot's label certificate, when it has one, goes into the file's key-value metadata (same columns)."""
    written = 0
    schema = PARQUET_SCHEMA
    if snapshot.certificate:
        schema = schema.with_metadata({CERTIFICATE_METADATA_KEY: certificate_json(snapshot, indent=None)})
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict] = []
        for row in snapshot_rows(snapshot, split=split):
            batch.append(flat_row(row))
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
                batch = []
                if progress:
                    progress(written)
        if batch or not written:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written


def certificate_json(snapshot: Snapshot, *, indent: int | None = 2) -> str:
    return json.dumps(snapshot.certificate, ensure_ascii=False, indent=indent, sort_keys=True)


def certificate_card_lines(snapshot: Snapshot) -> list[str]:
    """The card's "Label certificate" section, nothing without a certificate (the card then claims none)."""
    data = snapshot.certificate
    if not data:
        return []
    lines = ["", "## Label certificate", ""]
    if data.get("stale"):
        lines += [
            "**STALE**: the project's samples or final labels changed after this certificate was written, so "
            "it does not hold for the labels in this snapshot.",
            "",
        ]
    lines += [data["statement"], ""]
    lines += [f"- {name}: {value}" for name, value in certificate_figures(data)]
    if data.get("is_offline"):
        lines.append("- LLM labels: offline stand-in, not a real model.")
    lines += ["", "Assumes: " + " ".join(data.get("assumptions") or []), ""]
    lines += [
        f"The same certificate as JSON (also in `{CERTIFICATE_FILENAME}` and in each Parquet file's metadata "
        f"under `{CERTIFICATE_METADATA_KEY}`):",
        "",
        "```json",
        certificate_json(snapshot),
        "```",
    ]
    return lines


def dataset_card(
    snapshot: Snapshot, splits: dict[str, int], split_bytes: dict[str, int] | None = None
) -> str:
    """README.md for the Hugging Face folder: YAML header (licence, configs, features) and the card text.

    `dataset_info.splits` follows the Hub's schema: every split has name, num_bytes and num_examples (datasets
    ignores the whole `splits` field, with a warning, when one is missing); `split_bytes` are the splits' Arrow
    sizes (split_arrow_bytes), which datasets only reports, while it checks num_examples against the files."""
    dtypes = {"id": "int64", "weight": "float64", "llm_confidence": "float64"}
    lines = [
        "---",
        f"license: {snapshot.licence or 'unknown'}",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for name in splits:
        lines += [f"  - split: {name}", f"    path: data/{name}.parquet"]
    lines += ["dataset_info:", "  features:"]
    for column in FLAT_COLUMNS:
        lines += [f"  - name: {column}", f"    dtype: {dtypes.get(column, 'string')}"]
    lines += ["  splits:"]
    sizes = split_bytes or {}
    for name, count in splits.items():
        lines += [f"  - name: {name}", f"    num_bytes: {sizes.get(name, 0)}", f"    num_examples: {count}"]
    lines += [f"  dataset_size: {sum(sizes.get(name, 0) for name in splits)}"]
    lines += ["---", ""]
    project = snapshot.project
    codebook = snapshot.codebook
    lines += [f"# {project.name} — curated snapshot v{snapshot.version}", ""]
    if snapshot.note:
        lines += [snapshot.note, ""]
    lines += [
        f"Made with synthstudio on {snapshot.created_at:%Y-%m-%d %H:%M} UTC. Licence: {snapshot.licence or 'unknown'}.",
        "",
        "## Codebook",
        "",
        f"Version {snapshot.codebook_version or '—'}.",
        "",
    ]
    if codebook:
        lines += [codebook.task_description, ""]
        for label in codebook.labels.all():
            lines.append(f"- **{label.name}**: {label.description}")
        lines += ["", codebook.guidelines, ""]
    lines += ["## Counts", "", f"{snapshot.item_count} items."]
    lines += [f"- {name}: {count}" for name, count in splits.items()]
    lines += ["", "## Label distribution", ""]
    lines += [f"- {label}: {count}" for label, count in sorted(snapshot.label_counts.items())]
    agreement = (snapshot.stats or {}).get("agreement") or {}
    lines += ["", "## Agreement", ""]
    if agreement:
        lines.append(
            f"Krippendorff's alpha (nominal) {agreement.get('krippendorff_alpha')} over "
            f"{agreement.get('items_multiply_labelled')} items labelled by two or more humans."
        )
    else:
        lines.append("Not available: no item was labelled by two or more humans.")
    lines += certificate_card_lines(snapshot)
    stats = snapshot.stats or {}
    lines += ["", "## Provenance and generation", ""]
    lines.append(
        f"Label policy: {snapshot.label_policy}. Each row's `label_source` says where its label came from "
        "(`adjudicated`, `human`, `llm`)."
    )
    lines.append(f"Sample weights: {weights_sentence(stats.get('weights'))}")
    lines.append(
        f"Label sources: {json.dumps(stats.get('sources', {}))}. Origins: {json.dumps(stats.get('origins', {}))}."
    )
    lines.append(
        "`llm_label`/`llm_confidence` are the LLM's current label and its probability; `fields` and "
        "`provenance` hold JSON text (the sample's structured fields and where it came from)."
    )
    lines.append(
        "`text` is the text after any annotator correction a lead accepted; `original_text` is the text "
        "before it (null when the text was not corrected)."
    )
    if stats.get("generation_runs"):
        lines.append(f"Generation runs: {', '.join(stats['generation_runs'])}.")
    lines += [
        "",
        "## Curation filters",
        "",
        "```json",
        json.dumps(snapshot.filter_settings, indent=2),
        "```",
        "",
    ]
    lines += ["Removed by each filter (counted on its own):", ""]
    lines += [f"- {name}: {count}" for name, count in snapshot.removed_counts.items()]
    return "\n".join(lines) + "\n"


def hf_folder_write(
    snapshot: Snapshot, folder: Path, *, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """data/<split>.parquet per split, a README.md card and, when the snapshot has a label certificate,
    certificate.json: `datasets.load_dataset(folder)` loads it as is."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    done = 0
    for name in snapshot_splits(snapshot) or ["train"]:

        def split_progress(written: int, offset: int = done) -> None:
            if progress:
                progress(offset + written)

        counts[name] = parquet_write(
            snapshot, folder / "data" / f"{name}.parquet", split=name, progress=split_progress
        )
        done += counts[name]
    sizes = {name: split_arrow_bytes(folder / "data" / f"{name}.parquet") for name in counts}
    (folder / "README.md").write_text(dataset_card(snapshot, counts, sizes), encoding="utf-8")
    if snapshot.certificate:  # beside the card: what code reads (the data files are named in the card's YAML)
        (folder / CERTIFICATE_FILENAME).write_text(certificate_json(snapshot) + "\n", encoding="utf-8")
    return counts


def split_arrow_bytes(path: Path) -> int:
    """The split's size in memory as Arrow (what datasets calls num_bytes), read batch by batch."""
    return sum(batch.nbytes for batch in pq.ParquetFile(path).iter_batches())


def hf_zip_write(snapshot: Snapshot, path: Path, *, progress: Callable[[int], None] | None = None) -> None:
    top = f"{slug(snapshot.project.name)}-v{snapshot.version}"
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        folder = Path(scratch) / top
        hf_folder_write(snapshot, folder, progress=progress)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    archive.write(file, arcname=str(file.relative_to(scratch)))


def slug(text: str) -> str:
    cleaned = "".join(ch.lower() if ch.isalnum() else "-" for ch in text).strip("-")
    return "-".join(part for part in cleaned.split("-") if part) or "dataset"


def export_filename(snapshot: Snapshot, file_format: str) -> str:
    return f"{slug(snapshot.project.name)}-v{snapshot.version}.{EXTENSIONS[file_format]}"


def export_path(snapshot: Snapshot, file_format: str) -> Path:
    # the creation time in the name keeps a file from a reset database from posing as a new snapshot's export
    stamp = int(snapshot.created_at.timestamp() * 1_000_000)
    name = f"snapshot-{snapshot.pk}-{stamp}.{EXTENSIONS[file_format]}"
    return Path(settings.MEDIA_ROOT) / "exports" / f"project-{snapshot.project_id}" / name


def export_file(
    snapshot: Snapshot, file_format: str, *, progress: Callable[[int], None] | None = None
) -> Path:
    """The export as a file, written once (atomically: temp file, then rename) and reused afterwards."""
    path = export_path(snapshot, file_format)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(handle)
    temp = Path(temp_name)
    try:
        if file_format == ExportFormat.PARQUET:
            parquet_write(snapshot, temp, progress=progress)
        elif file_format == ExportFormat.HF:
            hf_zip_write(snapshot, temp, progress=progress)
        else:
            chunks = {
                ExportFormat.JSONL: jsonl_chunks,
                ExportFormat.CSV: csv_chunks,
                ExportFormat.LABEL_STUDIO: labelstudio_chunks,
            }[file_format]
            with temp.open("wb") as out:
                for chunk in chunks(snapshot):
                    out.write(chunk)
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def export_stream(snapshot: Snapshot, file_format: str, *, split: str | None = None) -> Iterator[bytes]:
    return {
        ExportFormat.JSONL: jsonl_chunks,
        ExportFormat.CSV: csv_chunks,
        ExportFormat.LABEL_STUDIO: labelstudio_chunks,
    }[file_format](snapshot, split=split)
