"""Benchmark the import path: generate an N-row JSONL file (text, gold label, LLM label, confidence and
distribution), import it with services.import_run into a throwaway project, print one JSON line.

peak_rss_mb is the process's peak resident memory (resource.getrusage); rss_before_mb is the resident memory
just before the import starts and rss_growth_mb the peak minus that (sampled every 50 ms during the import),
so runs with different --rows show whether memory grows with the file. cpu_seconds is this process's CPU
time during the import: on a busy machine, seconds much larger than cpu_seconds means waiting for a core.
"""

from __future__ import annotations

import json
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from synthstudio import services
from synthstudio.benchmarking import peak_rss_mb
from synthstudio.importing import ColumnMapping
from synthstudio.models import HumanAnnotation, ImportJob, JobStatus, LLMAnnotation, Project, Sample

BENCH_LABELS = ["billing", "delivery", "account_access", "product_defect"]
WORDS = (
    "order parcel refund invoice password login courier charged twice broken missing late address account "
    "locked screen battery warranty discount code tracking delivered damaged card payment email reset app "
    "store pickup subscription cancelled replacement colour size zip box leaking charger week yesterday"
).split()


def write_bench_file(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for index in range(rows):
            weights = [rng.random() + 0.01 for _ in BENCH_LABELS]
            total = sum(weights)
            distribution = {
                label: round(weight / total, 4) for label, weight in zip(BENCH_LABELS, weights, strict=True)
            }
            llm_label = max(distribution, key=distribution.get)
            text = f"Message {index}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + "."
            record = {
                "text": text,
                "label": rng.choice(BENCH_LABELS) if index % 5 == 0 else "",
                "llm_label": llm_label,
                "llm_confidence": distribution[llm_label],
                "llm_distribution": distribution,
            }
            out.write(json.dumps(record) + "\n")


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * resource.getpagesize() / 2**20


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = current_rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.05):
            self.peak_mb = max(self.peak_mb, current_rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return max(self.peak_mb, current_rss_mb())


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # the checks import every app's URLs (and torch): skewing RSS
    help = "Import a generated N-row JSONL file through the real import path and print timing/memory as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument(
            "--keep", action="store_true", help="Keep the throwaway project instead of deleting it."
        )

    def handle(self, *args, rows: int, keep: bool, **options) -> None:
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
            path = Path(folder) / "bench.jsonl"
            write_bench_file(path, rows)
            project = Project.objects.create(name=f"bench_import {rows} rows (throwaway)")
            codebook = services.codebook_create_version(
                project=project, user=None, task_description="Benchmark: support intents.", guidelines="",
                labels=[{"name": name} for name in BENCH_LABELS],
            )  # fmt: skip
            job = ImportJob.objects.create(
                project=project,
                original_name=path.name,
                stored_path=str(path),
                file_format="jsonl",
                size_bytes=path.stat().st_size,
                codebook=codebook,
                mapping=ColumnMapping(
                    text_columns=["text"],
                    gold_label_column="label",
                    llm_label_column="llm_label",
                    llm_confidence_column="llm_confidence",
                    llm_distribution_column="llm_distribution",
                ).to_dict(),
            )
            rss_before = current_rss_mb()
            sampler = RssSampler()
            sampler.start()
            started, cpu_started = time.perf_counter(), time.process_time()
            services.import_run(job=job)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            sampled_peak = sampler.stop()
            job.refresh_from_db()
            try:
                if job.status != JobStatus.SUCCEEDED or job.imported != rows:
                    raise CommandError(
                        f"The import did not succeed: {job.status} {job.error} ({job.imported} rows)"
                    )
            finally:
                if not keep:
                    _delete_bench_project(project)
        result = {
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "cpu_seconds": round(
                cpu_seconds, 2
            ),  # this process only; wall time also counts waiting for a CPU
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_before_mb": round(rss_before, 1),
            "rss_growth_mb": round(sampled_peak - rss_before, 1),
            "file_mb": round(job.size_bytes / 2**20, 1),
            "database": connection.vendor,
        }
        self.stdout.write(json.dumps(result))


def _delete_bench_project(project: Project) -> None:
    """Plain DELETEs: the ORM's cascade would load every sample to delete it."""
    with transaction.atomic():
        samples = Sample.objects.filter(project=project)
        for related in (
            HumanAnnotation.objects.filter(sample__project=project),
            LLMAnnotation.objects.filter(sample__project=project),
        ):
            related._raw_delete(related.db)
        samples._raw_delete(samples.db)
        ImportJob.objects.filter(project=project).delete()  # it protects the codebook version it used
        project.delete()
