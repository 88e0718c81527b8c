"""Benchmark: automatic dataset-level rounds (generation.services.rounds_loop) end to end, with the local
OpenAI-compatible test server as the generator and gold answers playing the humans. Prints one JSON line.

    python manage.py bench_rounds --rounds 4 --per-round 40 --error-rate 0.5

The scripted generator (`ScriptedSentimentGenerator`) writes film reviews for the requested label and tone,
with one error pattern by condition: for the tone `--error-value` (default "sarcastic") it writes a review of
the *other* sentiment while still claiming the requested label, with probability `--error-rate` — unless its
prompt shows human-checked examples of that tone among its demos: each one shown multiplies the rate by
CHECKED_EXAMPLE_FACTOR (the in-context premise S3 relies on: a model shown checked examples of the hard case
errs less, and more rounds put more of them in its demo pool). Other tones
are always right. Each review's wording says its true sentiment, so the gold label is read from the text.

The loop runs as in the studio, every step through its real service: generation over HTTP with the real
openai client, the offline LLM labeller, the project's routing policy (random, every item routed: the
humans see each sample), the review queue (one annotator answering the gold label), and the worker task
that advances the loop — run eagerly in this process against a throwaway database (`--in-place` uses the
configured one, as the tests do).

The table has per round: samples, the share humans corrected, the held-out student's error, the share of
samples with the error-prone tone, and that tone's weight. Expected: the corrected share falls round over
round and the error-prone tone's weight rises.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from generation.testing.openai_server import OpenAICompatibleTestServer, conditions_in

POSITIVE_PHRASES = (
    "wonderful, I loved it",
    "I loved it, a delight",
    "great, I loved every minute",
    "I loved it, superb",
)
NEGATIVE_PHRASES = (
    "awful, I hated it",
    "I hated it, a bore",
    "terrible, I hated every minute",
    "I hated it, dreadful",
)
TONE_WORDS = {"plain": "Honestly,", "formal": "In my considered view,", "sarcastic": "Oh sure, wow,"}
CHECKED_EXAMPLE_FACTOR = (
    0.25  # each checked example of the tone in the prompt multiplies its error rate by this
)
LABELS = [
    {
        "name": "positive",
        "description": "The reviewer liked the film.",
        "examples": ["I loved it, wonderful."],
    },
    {
        "name": "negative",
        "description": "The reviewer disliked the film.",
        "examples": ["I hated it, awful."],
    },
]


def gold_label(text: str) -> str:
    """The sentiment the scripted generator actually wrote (its phrases are disjoint per label)."""
    return "positive" if any(phrase in text for phrase in POSITIVE_PHRASES) else "negative"


def tone_of(text: str) -> str:
    return next((tone for tone, words in TONE_WORDS.items() if text.startswith(words)), "")


class ScriptedSentimentGenerator:
    """A test-server responder with an error pattern by condition value (see the module docstring). Errors are
    spread by error diffusion rather than drawn at random, so a round of n requests at rate r has r·n errors
    (± 1) and the table shows the loop's effect rather than sampling noise."""

    def __init__(self, *, error_value: str, error_rate: float) -> None:
        self.error_value, self.error_rate = error_value, error_rate
        self._owed = 0.0  # error diffusion: the rates so far, summed, minus the errors already made
        self._lock = threading.Lock()

    def __call__(self, body: dict, index: int) -> str:
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content") or "") for m in messages)
        conditions = conditions_in(messages[-1].get("content", "") if messages else "")
        label, tone = conditions.get("label", "positive"), conditions.get("tone", "plain")
        digest = hashlib.sha256(json.dumps([messages, body.get("seed"), index]).encode()).hexdigest()
        rate = 0.0
        if tone == self.error_value:
            # demos are human-verified samples (the generation demo pool), shown with their checked label;
            # the prompt's own condition lines name the tone, never its wording
            checked_examples_shown = prompt.count(TONE_WORDS[tone])
            rate = self.error_rate * CHECKED_EXAMPLE_FACTOR**checked_examples_shown
        with self._lock:  # exactly `rate` errors per request on average, not a coin flip's ± noise
            self._owed += rate
            wrong = self._owed >= 1.0 - 1e-9
            self._owed -= 1.0 if wrong else 0.0
        written = ("negative" if label == "positive" else "positive") if wrong else label
        phrases = POSITIVE_PHRASES if written == "positive" else NEGATIVE_PHRASES
        text = f"{TONE_WORDS.get(tone, '')} this film was {phrases[int(digest[8:10], 16) % len(phrases)]} ({digest[:6]})."
        return json.dumps({"text": text.strip(), "label": label})


def rounds_benchmark(
    *, rounds: int, per_round: int, error_value: str, error_rate: float, seed: int = 0, latency_ms: float = 0
) -> dict[str, Any]:
    """Run the loop to its end and return the per-round table (needs eager Celery and a database)."""
    from django.contrib.auth import get_user_model

    from annotation.models import RoutingPolicy
    from annotation.review.answers import review_answer_submit
    from annotation.review.queue import review_next
    from generation.models import GenerationRun, LLMEndpoint, RoundState
    from generation.prompts import DEFAULT_TEMPLATE
    from generation.services.configs import config_create_version
    from generation.services.runs import run_start
    from synthstudio.models import Membership, Project, Role
    from synthstudio.services import codebook_create_version

    stamp = f"{int(time.time() * 1000)}"
    users = get_user_model().objects
    lead = users.create_user(username=f"bench-rounds-lead-{stamp}", password="-")
    annotator = users.create_user(username=f"bench-rounds-annotator-{stamp}", password="-")
    project = Project.objects.create(name=f"bench_rounds {stamp}", created_by=lead)
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    codebook_create_version(
        project=project,
        user=lead,
        task_description="Sentiment of a film review.",
        guidelines="",
        labels=LABELS,
    )
    RoutingPolicy.objects.create(
        project=project, strategy="random", budget_share=1.0, batch_size=100_000, annotators_per_item=1
    )
    generator = ScriptedSentimentGenerator(error_value=error_value, error_rate=error_rate)
    with OpenAICompatibleTestServer(latency_ms=latency_ms, responder=generator) as server:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="scripted", base_url=server.base_url, model="test-model", max_concurrency=8,
            max_retries=1, timeout_seconds=10.0,
        )  # fmt: skip
        config = config_create_version(
            project=project, user=lead, name="rounds-bench",
            values={
                "endpoint": endpoint, "template": DEFAULT_TEMPLATE, "target_count": per_round, "seed": seed,
                "dimensions": [{"name": "tone", "values": list(TONE_WORDS)}], "sampling_mode": "balanced",
                "demo_count": 6, "demo_strategy": "random", "rounds": rounds,
            },
        )  # fmt: skip
        first = run_start(config=config, user=lead)
        answered = 0
        while (assignment := review_next(project=project, annotator=annotator)) is not None:
            review_answer_submit(assignment=assignment, label=gold_label(assignment.task.sample.text))
            answered += 1
        requests = server.request_count
    loop = list(
        GenerationRun.objects.filter(config__name=config.name, project=project).order_by("round_number")
    )
    table = []
    for run in loop:
        report = run.round_report or {}
        values = (report.get("values") or {}).get("tone", {})
        samples = report.get("samples") or 0
        table.append(
            {
                "round": run.round_number,
                "state": run.round_state,
                "samples": samples,
                "reviewed": report.get("reviewed"),
                "corrected_share": report.get("corrected_share"),
                "student_error": report.get("student_error"),
                "error_value_share": round(values.get(error_value, {}).get("generated", 0) / samples, 3)
                if samples
                else None,
                "error_value_weight": (run.condition_weights or {}).get("tone", {}).get(error_value, 1.0),
            }
        )
    shares = [row["corrected_share"] for row in table if row["corrected_share"] is not None]
    weights = [row["error_value_weight"] for row in table]
    last = loop[-1] if loop else first
    return {
        "benchmark": "bench_rounds",
        "generator": "local OpenAI-compatible test server (real openai client), scripted errors",
        "labeller": "offline (embedding zero-shot)",
        "rounds_configured": rounds,
        "per_round": per_round,
        "error_value": error_value,
        "error_rate": error_rate,
        "rounds": table,
        # never rising from one round to the next, and lower at the end than in the first round (a share
        # that has reached 0 cannot fall further)
        "corrected_share_falls": len(shares) >= 2
        and all(b <= a for a, b in itertools.pairwise(shares))
        and shares[-1] < shares[0],
        "weight_moves_toward_error_value": len(weights) >= 2 and weights[-1] > weights[0],
        "stop_reason": last.round_stop_reason,
        "finished": last.round_state == RoundState.STOPPED,
        "human_answers": answered,
        "llm_requests": requests,
    }


class Command(BaseCommand):
    help = "Benchmark automatic rounds against a scripted test-server generator; prints one JSON line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rounds", type=int, default=4)
        parser.add_argument("--per-round", type=int, default=40)
        parser.add_argument("--error-value", default="sarcastic", choices=list(TONE_WORDS))
        parser.add_argument("--error-rate", type=float, default=0.5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--latency-ms", type=float, default=0.0)
        parser.add_argument(
            "--in-place", action="store_true", help="Use the configured database instead of a throwaway one."
        )

    def handle(
        self, *args, rounds, per_round, error_value, error_rate, seed, latency_ms, in_place, **options
    ):
        if rounds < 2 or per_round < 4:
            raise CommandError("Use --rounds 2 or more and --per-round 4 or more.")
        if not 0 <= error_rate <= 1:
            raise CommandError("--error-rate is a probability between 0 and 1.")
        from synthstudio import celery_app

        settings.CELERY_TASK_ALWAYS_EAGER = True  # the worker task runs in this process
        settings.LLM_ALLOW_PRIVATE_HOSTS = True  # the test server listens on 127.0.0.1
        celery_app.conf.task_always_eager = True
        throwaway = None if in_place else connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            result = rounds_benchmark(
                rounds=rounds, per_round=per_round, error_value=error_value, error_rate=error_rate, seed=seed,
                latency_ms=latency_ms,
            )  # fmt: skip
        finally:
            if throwaway is not None:
                connection.creation.destroy_test_db(throwaway, verbosity=0)
        self.stdout.write(json.dumps(result))
