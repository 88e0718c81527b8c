"""Benchmark: selection strategies on random unit vectors; one JSON line.

    python manage.py bench_selection --n 100000 --dim 384 --select 1000

Each strategy runs in a fresh subprocess so its peak RSS is its own. Nothing touches the database.
Target (issue 4): vote-k on 100,000 items under 120 s and 2 GB on 2 cores.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.routing.selection import entropy_select, kmeans_select, votek_select
from synthstudio.benchmarking import peak_rss_mb

STRATEGIES = ("votek", "kmeans", "entropy")
LABELS_FOR_ENTROPY = 5


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_strategy(strategy: str, *, n: int, dim: int, select: int, seed: int) -> dict:
    """Time one strategy in this process (data generation excluded). `cpu_seconds` (user + system, all
    threads) is reported beside wall-clock `seconds`: on a shared machine it shows the work done."""
    if strategy == "entropy":
        probs = np.random.default_rng(seed).dirichlet(np.ones(LABELS_FOR_ENTROPY), size=n)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        picked = entropy_select(probs, select)
    else:
        vectors = random_unit_vectors(n, dim, seed)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        if strategy == "votek":
            picked = votek_select(vectors, select)
        else:
            picked = kmeans_select(vectors, select, seed=seed)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds() - cpu_started, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "selected": int(len(picked)),
    }


class Command(BaseCommand):
    help = "Time random, k-means, vote-k and entropy selection on random unit vectors (one JSON line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--n", type=int, default=100_000)
        parser.add_argument("--dim", type=int, default=384)
        parser.add_argument("--select", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--strategies", default=",".join(STRATEGIES))
        parser.add_argument("--only", choices=STRATEGIES, help="(internal) run one strategy in this process")

    def handle(self, *args, **options) -> None:
        n, dim, select, seed = options["n"], options["dim"], options["select"], options["seed"]
        if n < 2 or dim < 1 or select < 1:
            raise CommandError("--n must be at least 2, --dim and --select at least 1")
        if options["only"]:
            result = run_strategy(options["only"], n=n, dim=dim, select=select, seed=seed)
            self.stdout.write(json.dumps(result))
            return
        strategies = [s.strip() for s in options["strategies"].split(",") if s.strip()]
        unknown = sorted(set(strategies) - set(STRATEGIES))
        if unknown:
            raise CommandError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
        results = {}
        for strategy in strategies:
            completed = subprocess.run(
                [
                    sys.executable,
                    str(Path(settings.BASE_DIR) / "manage.py"),
                    "bench_selection",
                    f"--n={n}",
                    f"--dim={dim}",
                    f"--select={select}",
                    f"--seed={seed}",
                    f"--only={strategy}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                raise CommandError(f"{strategy} failed:\n{completed.stderr[-2000:]}")
            results[strategy] = json.loads(completed.stdout.strip().splitlines()[-1])
        self.stdout.write(json.dumps({"n": n, "dim": dim, "select": select, "strategies": results}))
