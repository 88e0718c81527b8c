"""Benchmark: the cached embedding service against a plain SentenceTransformer.encode; one JSON line.

    python manage.py bench_embed --n 5000

Runs in a throwaway SQLite database (a temporary file, migrated, deleted afterwards): the command re-runs
itself in a subprocess with DATABASE_URL pointing there, so the user's data is never touched. The texts are
generated fresh (random words plus a run id), so the service cannot find any of them cached.
Prints texts/s of both, their ratio (target ≥ 0.9) and how many embeddings a second pass recomputed (0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

INTERLEAVE_CHUNK = 500
WORDS = (
    "river archive lantern quiet signal harvest copper window orbit meadow ticket engine velvet summit "
    "puzzle harbour canvas whisper ledger garden comet thunder pencil marble voyage falcon crystal anchor "
    "ember prairie circuit cobalt juniper tide fable ridge saffron beacon glacier orchard mosaic tundra"
).split()


def fresh_texts(n: int, *, seed: int) -> list[str]:
    """n distinct sentences of 8–30 random words, tagged with a run id so no cache has seen them."""
    rng = np.random.default_rng(seed)
    run = uuid.uuid4().hex[:8]
    texts = []
    for index in range(n):
        length = int(rng.integers(8, 31))
        words = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=length))
        texts.append(f"{words} ({run}-{index})")
    return texts


class Command(BaseCommand):
    help = (
        "Texts/s of synthstudio.embeddings.embed_texts vs plain SentenceTransformer.encode (one JSON line)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--n", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--in-throwaway-db", action="store_true", help="(internal) already in a temp DB")

    def handle(self, *args, **options) -> None:
        if options["n"] < 1:
            raise CommandError("--n must be at least 1")
        if not options["in_throwaway_db"]:
            self.stdout.write(self.run_in_throwaway_database(options["n"], options["seed"]))
            return
        call_command("migrate", verbosity=0, interactive=False)
        self.stdout.write(json.dumps(self.measure(options["n"], options["seed"])))

    def run_in_throwaway_database(self, n: int, seed: int) -> str:
        with tempfile.TemporaryDirectory(prefix="synthstudio-bench-embed-") as directory:
            env = dict(os.environ, DATABASE_URL=f"sqlite:///{Path(directory) / 'bench.sqlite3'}")
            completed = subprocess.run(
                [
                    sys.executable,
                    str(Path(settings.BASE_DIR) / "manage.py"),
                    "bench_embed",
                    f"--n={n}",
                    f"--seed={seed}",
                    "--in-throwaway-db",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
        if completed.returncode != 0:
            raise CommandError(f"benchmark failed:\n{completed.stderr[-2000:]}")
        return completed.stdout.strip().splitlines()[-1]

    def measure(self, n: int, seed: int) -> dict:
        from synthstudio import embeddings
        from synthstudio.models import Embedding

        model_name = settings.EMBEDDING_MODEL
        model = embeddings.load_model(model_name)
        model.encode(["warm up the model"], show_progress_bar=False)  # load time counts for neither side
        texts = fresh_texts(n, seed=seed)

        def plain(chunk: list[str]) -> None:
            model.encode(
                chunk,
                batch_size=settings.EMBEDDING_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

        first_pass_chunks: list[np.ndarray] = []

        def service(chunk: list[str]) -> None:
            first_pass_chunks.append(embeddings.embed_texts(chunk, model_name=model_name))

        # Interleave the two in chunks, alternating which goes first, so that both see the same machine load
        # (this machine is shared; a long run of one then the other measures the neighbours, not the code).
        plain_seconds = service_seconds = 0.0
        stored_before = Embedding.objects.filter(model_name=model_name).count()
        for number, start in enumerate(range(0, n, INTERLEAVE_CHUNK)):
            chunk = texts[start : start + INTERLEAVE_CHUNK]
            order = (plain, service) if number % 2 == 0 else (service, plain)
            for run in order:
                started = time.perf_counter()
                run(chunk)
                elapsed = time.perf_counter() - started
                if run is plain:
                    plain_seconds += elapsed
                else:
                    service_seconds += elapsed
        stored_after = Embedding.objects.filter(model_name=model_name).count()
        first_pass = np.concatenate(first_pass_chunks)

        recomputed = 0
        original_encode = embeddings.encode

        def counting_encode(batch, **kwargs):
            nonlocal recomputed
            recomputed += len(batch)
            return original_encode(batch, **kwargs)

        embeddings.encode = counting_encode
        try:
            started = time.perf_counter()
            second_pass = embeddings.embed_texts(texts, model_name=model_name)
            second_seconds = time.perf_counter() - started
        finally:
            embeddings.encode = original_encode

        plain_rate = n / plain_seconds
        service_rate = n / service_seconds
        return {
            "n": n,
            "model": model_name,
            "plain_texts_per_s": round(plain_rate, 1),
            "service_texts_per_s": round(service_rate, 1),
            "ratio": round(service_rate / plain_rate, 3),
            "stored_first_pass": stored_after - stored_before,
            "second_pass_recomputed": recomputed,
            "second_pass_seconds": round(second_seconds, 3),
            "second_pass_identical": bool(np.array_equal(first_pass, second_pass)),
            "interleaved_chunk": INTERLEAVE_CHUNK,
        }
