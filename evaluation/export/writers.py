"""Export a snapshot: JSONL, CSV, Parquet, a Hugging Face datasets folder as a zip, Label Studio JSON (the
Label Studio import is evaluation.export.labelstudio).

Text formats are generators of bytes for StreamingHttpResponse; Parquet and the HF folder are written to a
file in row batches. Every writer reads the snapshot's stored rows through snapshot_rows (chunked), so memory
stays flat however big the snapshot is. Snapshots never change, so a written file is kept and reused.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from evaluation.curation.snapshots import snapshot_rows, snapshot_splits
from evaluation.models import ExportFormat, Snapshot
from synthstudio.csv_safety import csv_writer

PARQUET_BATCH = 5000
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
LS_FROM_NAME, LS_TO_NAME = "label", "text"


def flat_row(row: dict) -> dict:
    """A stored row as exported: nested JSON columns as JSON text (CSV/Parquet) and `id` for the sample."""
    return {
        "id": row["sample_ref"],
        "text": row["text"],
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


def labelstudio_task(row: dict, *, model_version: str) -> dict:
    """One Label Studio task: human-verified labels as annotations, the LLM's label as a scored prediction."""

    def result(label: str) -> list[dict]:
        return [
            {
                "from_name": LS_FROM_NAME,
                "to_name": LS_TO_NAME,
                "type": "choices",
                "value": {"choices": [label]},
            }
        ]

    task: dict = {
        "id": row["sample_ref"],
        "data": {
            "text": row["text"],
            "synthstudio_id": row["sample_ref"],
            "split": row["split"],
            "weight": row["weight"],
        },
        "annotations": [],
        "predictions": [],
    }
    if row["label_source"] in {"human", "adjudicated"}:
        task["annotations"].append(
            {"result": result(row["label"]), "was_cancelled": False, "ground_truth": False}
        )
    if row["llm_label"]:
        prediction = {"model_version": model_version, "result": result(row["llm_label"])}
        if row["llm_confidence"] is not None:
            prediction["score"] = row["llm_confidence"]
        task["predictions"].append(prediction)
    return task


def labelstudio_chunks(snapshot: Snapshot, *, split: str | None = None) -> Iterator[bytes]:
    """A JSON array of tasks, streamed one task at a time."""
    model_version = f"synthstudio snapshot v{snapshot.version}"
    yield b"["
    for index, row in enumerate(snapshot_rows(snapshot, split=split)):
        prefix = b"," if index else b""
        yield prefix + json.dumps(
            labelstudio_task(row, model_version=model_version), ensure_ascii=False
        ).encode("utf-8")
    yield b"]\n"


def parquet_write(
    snapshot: Snapshot, path: Path, *, split: str | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Write the rows to a Parquet file in batches of PARQUET_BATCH rows; returns the row count."""
    written = 0
    with pq.ParquetWriter(str(path), PARQUET_SCHEMA) as writer:
        batch: list[dict] = []
        for row in snapshot_rows(snapshot, split=split):
            batch.append(flat_row(row))
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
                written += len(batch)
                batch = []
                if progress:
                    progress(written)
        if batch or not written:
            writer.write_table(pa.Table.from_pylist(batch, schema=PARQUET_SCHEMA))
            written += len(batch)
    return written


def dataset_card(snapshot: Snapshot, splits: dict[str, int]) -> str:
    """README.md for the Hugging Face folder: YAML header (licence, configs, features) and the card text."""
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
    for name, count in splits.items():
        lines += [f"  - name: {name}", f"    num_examples: {count}"]
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
    stats = snapshot.stats or {}
    lines += ["", "## Provenance and generation", ""]
    lines.append(
        f"Label policy: {snapshot.label_policy}. Each row's `label_source` says where its label came from "
        "(`adjudicated`, `human`, `llm`); `weight` is the evidence behind it."
    )
    lines.append(
        f"Label sources: {json.dumps(stats.get('sources', {}))}. Origins: {json.dumps(stats.get('origins', {}))}."
    )
    lines.append(
        "`llm_label`/`llm_confidence` are the LLM's current label and its probability; `fields` and "
        "`provenance` hold JSON text (the sample's structured fields and where it came from)."
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
    """data/<split>.parquet per split and a README.md card: `datasets.load_dataset(folder)` loads it as is."""
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
    (folder / "README.md").write_text(dataset_card(snapshot, counts), encoding="utf-8")
    return counts


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
