"""Benchmark the samples page's search and filters at scale: one page (the count plus 50 rows, exactly the
queries synthstudio.views.sample_list makes) for each filter, on a project of N samples. Prints one JSON line.

    python manage.py bench_sample_search --samples 100000

A throwaway database (synthstudio.benchmarking) holds one project of `samples` rows: every sample with a
current LLM label, a fifth human-labelled, 1 % flagged by a reviewer, 10 % routed (with reasons as routing
writes them), a third generated. Each filter's page is timed `--repeat` times after one warm-up; the report
gives the median milliseconds and how many samples matched.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from django.core.management.base import BaseCommand
from django.core.paginator import Paginator
from django.db import transaction

from annotation.models import ReviewTask, TaskKind
from synthstudio.benchmarking import throwaway_database
from synthstudio.models import (
    FinalSource,
    HumanAnnotation,
    LabelMethod,
    LLMAnnotation,
    Origin,
    Project,
    Sample,
)
from synthstudio.sample_search import SampleSearch, samples_for_list

LABELS = ["billing", "delivery", "account_access", "product_defect"]
WORDS = (
    "order parcel refund invoice password login courier charged twice broken missing late address account "
    "locked screen battery warranty discount code tracking delivered damaged card payment email reset app"
).split()
REASONS = [
    "predicted error 0.81; student disagrees with LLM; entropy 0.93",
    "cold start: uncertainty ranking",
]
SEARCHES = {
    "none": SampleSearch(),
    "text": SampleSearch(q="refund invoice"),
    "final_label": SampleSearch(label="billing"),
    "llm_label": SampleSearch(llm_label="delivery"),
    "source_generated": SampleSearch(origin=Origin.GENERATED),
    "reviewed": SampleSearch(reviewed="yes"),
    "not_reviewed": SampleSearch(reviewed="no"),
    "flagged": SampleSearch(flagged="yes"),
    "routed_reason": SampleSearch(reason="student disagrees"),
    "not_routed": SampleSearch(routed="no"),
    "combined": SampleSearch(q="parcel", llm_label="delivery", reviewed="no", flagged="no"),
}
BATCH = 5000


class Command(BaseCommand):
    help = "Time the samples page's filters on N samples in a throwaway database; prints one JSON line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--samples", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=5)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, samples: int, repeat: int, seed: int, **options) -> None:
        with throwaway_database():
            started = time.perf_counter()
            project = self.populate(samples, random.Random(seed))
            setup_seconds = time.perf_counter() - started
            report = {
                "samples": samples,
                "setup_seconds": round(setup_seconds, 1),
                "page_ms": {},
                "matched": {},
            }
            for name, search in SEARCHES.items():
                timings, matched = [], 0
                for _ in range(repeat + 1):
                    start = time.perf_counter()
                    page = Paginator(samples_for_list(project=project, search=search), 50).get_page(1)
                    rows = list(page)
                    matched = page.paginator.count
                    timings.append((time.perf_counter() - start) * 1000)
                    assert len(rows) == min(50, matched)
                report["page_ms"][name] = round(statistics.median(timings[1:]), 1)
                report["matched"][name] = matched
            report["slowest_ms"] = max(report["page_ms"].values())
        self.stdout.write(json.dumps(report))

    def populate(self, count: int, rng: random.Random) -> Project:
        project = Project.objects.create(name="bench samples")
        for start in range(0, count, BATCH):
            with transaction.atomic():
                batch = []
                for index in range(start, min(count, start + BATCH)):
                    human = index % 5 == 0
                    batch.append(
                        Sample(
                            project=project,
                            text=f"Message {index}: "
                            + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))),
                            text_hash=f"{index:064x}",
                            origin=Origin.GENERATED if index % 3 == 0 else Origin.IMPORTED,
                            final_label=rng.choice(LABELS),
                            final_source=FinalSource.HUMAN if human else FinalSource.LLM,
                        )
                    )
                created = Sample.objects.bulk_create(batch)
                LLMAnnotation.objects.bulk_create(
                    [
                        LLMAnnotation(
                            sample=sample,
                            label=rng.choice(LABELS),
                            distribution={},
                            method=LabelMethod.IMPORTED,
                        )
                        for sample in created
                    ]
                )
                HumanAnnotation.objects.bulk_create(
                    [
                        HumanAnnotation(
                            sample=sample,
                            label=sample.final_label,
                            flag="harmful" if sample.pk % 100 == 0 else "",
                        )
                        for sample in created
                        if sample.final_source == FinalSource.HUMAN or sample.pk % 100 == 0
                    ]
                )
                ReviewTask.objects.bulk_create(
                    [
                        ReviewTask(
                            project=project, sample=sample, kind=TaskKind.ROUTED, reason=rng.choice(REASONS)
                        )
                        for sample in created
                        if sample.pk % 10 == 3
                    ]
                )
        return project
