"""Benchmark snapshot export on a throwaway database; prints one JSON line.

    python manage.py bench_export --rows 100000

Creates a scratch database (the test database of the configured backend, destroyed afterwards), fills a
project with --rows LLM-labelled samples, builds a snapshot through snapshot_create and exports it to JSONL
and Parquet through evaluation.export.writers.export_file (the path the pages, worker and API use). Peak RSS is
measured per export after resetting the kernel's high-water mark (/proc/self/clear_refs), so it shows what
exporting costs on top of the process baseline.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection

from synthstudio.benchmarking import peak_rss_mb, throwaway_database

WORDS = (
    "film plot actor scene score light dark slow quick warm cold brilliant dull moving tender harsh bright "
    "story music camera ending opening script twist character dialogue pacing visual sound heart"
).split()


def rss_mb(field: str) -> float:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Build an N-row snapshot in a throwaway database and time its JSONL and Parquet exports."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, rows: int, seed: int, **options):
        with throwaway_database(), tempfile.TemporaryDirectory() as media:
            settings.MEDIA_ROOT = media
            result = self.run_benchmark(rows, seed)
        print(json.dumps(result))

    def run_benchmark(self, rows: int, seed: int) -> dict:
        from evaluation.curation.filters import FilterSettings
        from evaluation.curation.snapshots import snapshot_create
        from evaluation.export.writers import export_file
        from synthstudio.models import FinalSource, LabelMethod, LLMAnnotation, Sample, text_hash
        from synthstudio.services import codebook_create_version, project_create

        user = get_user_model().objects.create_user(username="bench", password="bench-password-1")
        project = project_create(name="Export benchmark", user=user)
        codebook_create_version(
            project=project,
            user=user,
            task_description="Sentiment.",
            guidelines="",
            labels=[{"name": "positive"}, {"name": "negative"}],
        )
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        batch_size = 5000
        for start in range(0, rows, batch_size):
            count = min(batch_size, rows - start)
            confidences = rng.uniform(0.5, 1.0, size=count)
            labels = rng.choice(["positive", "negative"], size=count)
            samples = []
            for offset in range(count):
                words = rng.choice(WORDS, size=int(rng.integers(8, 30)))
                text = f"Review {start + offset}: " + " ".join(words) + "."
                samples.append(
                    Sample(
                        project=project,
                        text=text,
                        text_hash=text_hash(text),
                        final_label=str(labels[offset]),
                        final_source=FinalSource.LLM,
                        final_weight=float(confidences[offset]),
                        provenance={"run": "bench"},
                        fields={"n": start + offset},
                    )
                )
            created = Sample.objects.bulk_create(samples)
            LLMAnnotation.objects.bulk_create(
                LLMAnnotation(
                    sample=sample,
                    label=sample.final_label,
                    confidence=sample.final_weight,
                    distribution={sample.final_label: sample.final_weight},
                    method=LabelMethod.IMPORTED,
                )
                for sample in created
            )
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        snapshot = snapshot_create(
            project=project,
            user=user,
            settings=FilterSettings(),
            split_fractions={"train": 0.8, "validation": 0.1, "test": 0.1},
        )
        snapshot_seconds = time.perf_counter() - started
        build_peak = rss_mb("VmHWM")
        seconds, peaks, sizes = {}, {}, {}
        baseline = rss_mb("VmRSS")
        for file_format in ("jsonl", "parquet"):
            reset_peak_rss()
            started = time.perf_counter()
            path = export_file(snapshot, file_format)
            seconds[file_format] = round(time.perf_counter() - started, 2)
            peaks[file_format] = round(rss_mb("VmHWM"), 1)
            sizes[file_format] = round(path.stat().st_size / 1e6, 1)
        return {
            "rows": snapshot.item_count,
            "seconds": seconds,
            "peak_rss_mb": max(peaks.values()),
            "peak_rss_mb_per_format": peaks,
            "rss_before_export_mb": round(baseline, 1),
            "file_mb": sizes,
            "build_seconds": {"samples": round(build_seconds, 2), "snapshot": round(snapshot_seconds, 2)},
            "build_peak_rss_mb": round(build_peak, 1),
            "database": connection.vendor,
        }
