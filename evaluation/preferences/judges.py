"""LLM-as-judge runs (survey §3.3 open evaluation; AlpaGasus-style ratings, PandaLM/MT-Bench-style pairs),
through the shared client generation.llm against any OpenAI-compatible endpoint. Without an endpoint (or
when the lead picks it) the run is offline: evaluation.preferences.offline_judge, a transparent embedding
heuristic that is not an LLM, writes the same rows, and the run is marked "offline" wherever it shows.

- Rating runs: the judge gives each sample an A–D quality rating (Self-Instruct's scale); its agreement
  with the human ratings (Cohen's kappa) is reported.
- Pairwise runs: each pair is judged twice, once with response A first and once with B first. A verdict that
  changes with the order is position bias; the bias rate is the share of pairs judged both ways whose
  verdicts disagree. The run's verdict on a pair is the consistent choice, or a tie when inconsistent; its
  agreement with the human majority (Cohen's kappa) is reported.

Resumable: per-item results are committed as they arrive and a re-run skips what is stored; identical
calls come from the client's cache.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import numpy as np
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.labelling.offline import label_texts
from annotation.labelling.services import codebook_spec
from evaluation.dashboards import metrics
from evaluation.models import (
    JudgeKind,
    JudgeRating,
    JudgeRun,
    PairChoice,
    PairwiseItem,
    PairwiseJudgment,
    PairwiseRater,
    RaterKind,
)
from evaluation.preferences import offline_judge
from evaluation.tasks import judge_run_task
from generation.llm.client import EndpointSettings, LLMRequest, complete_many_sync
from generation.models import LLMEndpoint
from generation.services.endpoints import endpoint_default_for
from synthstudio.embeddings import embed_texts
from synthstudio.jobs import enqueue
from synthstudio.models import HumanAnnotation, JobStatus, Project, Sample

RATING_SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "string", "enum": ["A", "B", "C", "D"]}, "reason": {"type": "string"}},
    "required": ["rating"],
}
PAIR_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["1", "2", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner"],
}
RATING_SCALE = (
    "A: valid and satisfying.\n"
    "B: acceptable, with minor imperfections.\n"
    "C: responds to the task but has significant errors.\n"
    "D: irrelevant or invalid."
)


class NoEndpoint(Exception):
    """An LLM run lost its endpoint (the environment's default was unset after it started)."""


def default_endpoint_settings() -> EndpointSettings | None:
    if not django_settings.LLM_BASE_URL:
        return None
    return EndpointSettings(
        base_url=django_settings.LLM_BASE_URL,
        model=django_settings.LLM_MODEL or "default",
        api_key=django_settings.LLM_API_KEY or "no-key",
    )


def endpoint_settings_for(run: JudgeRun) -> EndpointSettings:
    if run.endpoint is not None:
        return EndpointSettings.from_endpoint(run.endpoint)
    default = default_endpoint_settings()
    if default is None:
        raise NoEndpoint("No LLM endpoint: add one under the project's endpoints or set LLM_BASE_URL.")
    return default


def judge_run_start(
    *,
    project: Project,
    user: AbstractBaseUser,
    kind: str,
    endpoint: LLMEndpoint | None,
    limit: int,
    offline: bool = False,
) -> JudgeRun:
    """Create a judge run and enqueue it. No endpoint chosen: the rule of every LLM form,
    generation.services.endpoints.endpoint_default_for (the project's own endpoint first, then the
    environment's); offline when asked, or when the project can use no endpoint at all."""
    if endpoint is None and not offline:
        endpoint = endpoint_default_for(project=project)
    offline = offline or endpoint is None
    if offline or endpoint is None:
        endpoint, base_url, model = None, "", offline_judge.OFFLINE_JUDGE_NAME
    else:
        base_url, model = endpoint.base_url, endpoint.model
    with transaction.atomic():
        run = JudgeRun.objects.create(
            project=project, created_by=user, kind=kind, endpoint=endpoint, base_url=base_url, model_name=model,
            is_offline=offline, limit=limit,
        )  # fmt: skip
        enqueue(judge_run_task, run.id)
    return run


# ---------------------------------------------------------------- prompts and parsing


def rating_messages(*, task: str, text: str, label: str) -> list[dict]:
    labelled = f"\nIts label: {label}" if label else ""
    return [
        {"role": "system", "content": "You are a careful reviewer of training data. You answer in JSON."},
        {"role": "user", "content": (
            f"Task the data was made for:\n{task}\n\nData item:\n{text}{labelled}\n\n"
            f"Rate the item's quality for this task with one letter:\n{RATING_SCALE}\n\n"
            'Answer as JSON: {"rating": "A", "reason": "..."}'
        )},
    ]  # fmt: skip


def pair_messages(*, prompt: str, first: str, second: str) -> list[dict]:
    return [
        {"role": "system", "content": "You compare two responses to the same instruction fairly. You answer in JSON."},
        {"role": "user", "content": (
            f"Instruction:\n{prompt}\n\nResponse 1:\n{first}\n\nResponse 2:\n{second}\n\n"
            "Which response follows the instruction better? Answer 1, 2 or tie, as JSON: "
            '{"winner": "1", "reason": "..."}'
        )},
    ]  # fmt: skip


_RATING_WORD = re.compile(r"\b([ABCD])\b")
_WINNER_WORD = re.compile(r"\b(1|2|tie)\b", re.IGNORECASE)


def parse_rating(parsed: object, content: str | None) -> str:
    if isinstance(parsed, dict) and str(parsed.get("rating", "")).upper() in {"A", "B", "C", "D"}:
        return str(parsed["rating"]).upper()
    match = _RATING_WORD.search(content or "")
    return match.group(1) if match else ""


def parse_winner(parsed: object, content: str | None) -> str:
    if isinstance(parsed, dict) and str(parsed.get("winner", "")).lower() in {"1", "2", "tie"}:
        return str(parsed["winner"]).lower()
    match = _WINNER_WORD.search(content or "")
    return match.group(1).lower() if match else ""


def canonical_choice(winner: str, *, a_first: bool) -> str:
    """A verdict by position (1, 2, tie) as a choice between the item's A and B."""
    if winner == "tie":
        return PairChoice.TIE
    first_won = winner == "1"
    return PairChoice.A if first_won == a_first else PairChoice.B


# ---------------------------------------------------------------- running


def judge_run_execute(*, run: JudgeRun) -> JudgeRun:
    if run.is_finished:
        return run
    run.mark_running()
    try:
        if run.is_offline:
            _run_ratings_offline(run) if run.kind == JudgeKind.RATING else _run_pairs_offline(run)
        else:
            endpoint = endpoint_settings_for(run)
            _run_ratings(run, endpoint) if run.kind == JudgeKind.RATING else _run_pairs(run, endpoint)
        run.summary = judge_summary(run=run)
        run.save(update_fields=["summary"])
    except Exception as error:
        run.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    if run.is_offline:
        message = "Judged offline by the heuristic judge (embedding similarity and text checks), not an LLM."
    else:
        message = f"Judged by {run.model_name} at {run.base_url}."
    run.mark_finished(JobStatus.SUCCEEDED, message=message)
    return run


def _stop_requested(run: JudgeRun) -> bool:
    return JudgeRun.objects.filter(pk=run.pk, status=JobStatus.CANCELLED).exists()


def _rating_sample_ids(run: JudgeRun) -> list[int]:
    """The samples a rating run judges: those with a human rating first, then by id, up to the limit."""
    project = run.project
    rated = set(
        HumanAnnotation.objects.filter(sample__project=project)
        .exclude(rating="")
        .values_list("sample_id", flat=True)
    )
    ids = sorted(
        Sample.objects.filter(project=project).values_list("id", flat=True), key=lambda i: (i not in rated, i)
    )
    return ids[: run.limit]


def _run_ratings(run: JudgeRun, endpoint: EndpointSettings) -> None:
    project = run.project
    codebook = project.codebook
    task = codebook.task_description if codebook else project.description
    ids = _rating_sample_ids(run)
    done = set(JudgeRating.objects.filter(run=run).values_list("sample_id", flat=True))
    samples = Sample.objects.in_bulk([i for i in ids if i not in done])
    run.report_progress(total=len(ids), done=len(done))
    requests = [
        LLMRequest(key=sample.id, messages=rating_messages(task=task, text=sample.text, label=sample.final_label),
                   params={"temperature": 0, "max_tokens": 200}, json_schema=RATING_SCHEMA)
        for sample in samples.values()
    ]  # fmt: skip
    counts = {"done": len(done), "failed": 0}

    def on_result(request: LLMRequest, result) -> None:
        rating = (
            parse_rating(result.parsed[0] if result.parsed else None, result.content) if result.ok else ""
        )
        JudgeRating.objects.update_or_create(
            run=run,
            sample_id=request.key,
            defaults={"rating": rating, "raw_output": (result.content or result.error or "")[:4000]},
        )
        counts["done" if rating else "failed"] += 1
        run.report_progress(done=counts["done"], failed=counts["failed"])

    complete_many_sync(endpoint, requests, on_result, should_stop=lambda: _stop_requested(run))


def judge_rater(run: JudgeRun) -> PairwiseRater:
    rater, _ = PairwiseRater.objects.get_or_create(
        project=run.project, name=f"judge run {run.pk} ({run.model_name})", defaults={"kind": RaterKind.LLM}
    )
    return rater


def _pair_item_ids(run: JudgeRun) -> list[int]:
    """The pairs a pairwise run judges: those people judged first, then by id, up to the limit."""
    project = run.project
    judged_by_people = set(
        PairwiseJudgment.objects.filter(item__project=project)
        .exclude(rater__kind=RaterKind.LLM)
        .values_list("item_id", flat=True)
    )
    ids = sorted(
        PairwiseItem.objects.filter(project=project).values_list("id", flat=True),
        key=lambda i: (i not in judged_by_people, i),
    )
    return ids[: run.limit]


def _run_pairs(run: JudgeRun, endpoint: EndpointSettings) -> None:
    rater = judge_rater(run)
    ids = _pair_item_ids(run)
    done = set(PairwiseJudgment.objects.filter(rater=rater).values_list("item_id", "a_shown_first"))
    items = PairwiseItem.objects.in_bulk(ids)
    run.report_progress(total=2 * len(ids), done=len(done))
    requests = []
    for item_id in ids:
        item = items[item_id]
        for a_first in (True, False):
            if (item_id, a_first) in done:
                continue
            first, second = (
                (item.response_a, item.response_b) if a_first else (item.response_b, item.response_a)
            )
            requests.append(LLMRequest(key=(item_id, a_first), messages=pair_messages(prompt=item.prompt, first=first, second=second),
                                       params={"temperature": 0, "max_tokens": 200}, json_schema=PAIR_SCHEMA))  # fmt: skip
    counts = {"done": len(done), "failed": 0}

    def on_result(request: LLMRequest, result) -> None:
        item_id, a_first = request.key
        winner = (
            parse_winner(result.parsed[0] if result.parsed else None, result.content) if result.ok else ""
        )
        if not winner:
            counts["failed"] += 1
        else:
            PairwiseJudgment.objects.update_or_create(
                item_id=item_id, rater=rater, a_shown_first=a_first,
                defaults={"choice": canonical_choice(winner, a_first=a_first), "judge_run": run, "raw_output": (result.content or "")[:4000]},
            )  # fmt: skip
            counts["done"] += 1
        run.report_progress(done=counts["done"], failed=counts["failed"])

    complete_many_sync(endpoint, requests, on_result, should_stop=lambda: _stop_requested(run))


# ---------------------------------------------------------------- running offline (no LLM)

OFFLINE_BATCH = 200


def _codebook_references(project: Project) -> tuple[list[str], list[int], list[str]]:
    """The texts the offline judge compares samples with: each label's codebook texts (as the offline
    labeller uses them); with no labels, the task description as a single reference."""
    codebook = project.codebook
    if codebook is not None:
        spec = codebook_spec(codebook)
        texts, owners = label_texts(spec)
        if texts:
            return texts, owners, list(spec.label_names)
    task = (codebook.task_description if codebook else "") or project.description
    if not task.strip():
        raise ValueError(
            "The offline judge needs a codebook with labels or a task description to compare samples with."
        )
    return [task.strip()], [0], ["the task description"]


def _run_ratings_offline(run: JudgeRun) -> None:
    references, owners, label_names = _codebook_references(run.project)
    reference_vectors = embed_texts(references)
    ids = _rating_sample_ids(run)
    done = set(JudgeRating.objects.filter(run=run).values_list("sample_id", flat=True))
    pending = [i for i in ids if i not in done]
    run.report_progress(total=len(ids), done=len(done))
    for start in range(0, len(pending), OFFLINE_BATCH):
        if _stop_requested(run):
            return
        samples = list(Sample.objects.filter(pk__in=pending[start : start + OFFLINE_BATCH]).order_by("id"))
        texts = [sample.text for sample in samples]
        ratings = offline_judge.offline_ratings(
            texts,
            [sample.final_label for sample in samples],
            embed_texts(texts),
            reference_vectors,
            owners,
            label_names,
        )
        with transaction.atomic():
            for sample, rating in zip(samples, ratings, strict=True):
                raw = {"offline": True, "judge": offline_judge.OFFLINE_JUDGE_NAME, "rating": rating.rating,
                       "reason": rating.reason, "similarity": rating.similarity, "label": rating.scored_label}  # fmt: skip
                JudgeRating.objects.update_or_create(
                    run=run, sample=sample, defaults={"rating": rating.rating, "raw_output": json.dumps(raw)}
                )
        run.report_progress(done=run.done + len(samples))


def _run_pairs_offline(run: JudgeRun) -> None:
    rater = judge_rater(run)
    ids = _pair_item_ids(run)
    done = set(PairwiseJudgment.objects.filter(rater=rater).values_list("item_id", "a_shown_first"))
    pending = [i for i in ids if (i, True) not in done or (i, False) not in done]
    run.report_progress(total=2 * len(ids), done=len(done))
    for start in range(0, len(pending), OFFLINE_BATCH):
        if _stop_requested(run):
            return
        items = list(
            PairwiseItem.objects.filter(pk__in=pending[start : start + OFFLINE_BATCH]).order_by("id")
        )
        prompts, responses_a, responses_b = (
            [getattr(i, f) for i in items] for f in ("prompt", "response_a", "response_b")
        )
        scores = offline_judge.pair_scores(
            prompts,
            responses_a,
            responses_b,
            embed_texts(prompts),
            embed_texts(responses_a),
            embed_texts(responses_b),
        )
        written = 0
        with transaction.atomic():
            for item, (score_a, score_b) in zip(items, scores, strict=True):
                for a_first in (True, False):
                    if (item.id, a_first) in done:
                        continue
                    first, second = (score_a, score_b) if a_first else (score_b, score_a)
                    winner = offline_judge.pair_winner(first, second)
                    raw = {"offline": True, "judge": offline_judge.OFFLINE_JUDGE_NAME, "winner": winner,
                           "score_first": first, "score_second": second, "tie_band": offline_judge.PAIR_TIE_BAND}  # fmt: skip
                    PairwiseJudgment.objects.update_or_create(
                        item=item, rater=rater, a_shown_first=a_first,
                        defaults={"choice": canonical_choice(winner, a_first=a_first), "judge_run": run, "raw_output": json.dumps(raw)},
                    )  # fmt: skip
                    written += 1
        run.report_progress(done=run.done + written)


# ---------------------------------------------------------------- summaries


def _kappa_or_none(a: list[str], b: list[str]) -> float | None:
    if len(a) < 2:
        return None
    value = metrics.cohen_kappa(a, b)
    return None if np.isnan(value) else value


def judge_summary(*, run: JudgeRun) -> dict:
    return rating_summary(run) if run.kind == JudgeKind.RATING else pair_summary(run)


def rating_summary(run: JudgeRun) -> dict:
    judge = dict(JudgeRating.objects.filter(run=run).exclude(rating="").values_list("sample_id", "rating"))
    human: dict[int, str] = {}
    for sample_id, rating in (
        HumanAnnotation.objects.filter(sample_id__in=list(judge))
        .exclude(rating="")
        .order_by("-created_at", "-id")
        .values_list("sample_id", "rating")
    ):
        human.setdefault(sample_id, rating)  # the newest human rating of each sample
    shared = [(human[i], judge[i]) for i in judge if i in human]
    acceptable = sum(1 for r in judge.values() if r in {"A", "B"})
    interval = metrics.wilson_interval(acceptable, len(judge))
    return {
        "judged": len(judge),
        "distribution": {r: Counter(judge.values()).get(r, 0) for r in "ABCD"},
        "acceptable_share": interval.share, "acceptable_low": interval.low, "acceptable_high": interval.high,
        "with_humans": len(shared),
        "agreement": (sum(h == j for h, j in shared) / len(shared)) if shared else None,
        "kappa": _kappa_or_none([h for h, _ in shared], [j for _, j in shared]),
    }  # fmt: skip


def human_majority_choices(project: Project) -> dict[int, str]:
    """Per pair, the choice most human/imported raters made (pairs with a tied vote are left out)."""
    votes: dict[int, Counter] = defaultdict(Counter)
    for item_id, choice in (
        PairwiseJudgment.objects.filter(item__project=project)
        .exclude(rater__kind=RaterKind.LLM)
        .values_list("item_id", "choice")
    ):
        votes[item_id][choice] += 1
    majority = {}
    for item_id, counter in votes.items():
        ranked = counter.most_common(2)
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            majority[item_id] = ranked[0][0]
    return majority


def pair_summary(run: JudgeRun) -> dict:
    rater = judge_rater(run)
    by_item: dict[int, dict[bool, str]] = defaultdict(dict)
    for item_id, a_first, choice in PairwiseJudgment.objects.filter(rater=rater).values_list(
        "item_id", "a_shown_first", "choice"
    ):
        by_item[item_id][a_first] = choice
    both = {i: v for i, v in by_item.items() if len(v) == 2}
    inconsistent = [i for i, v in both.items() if v[True] != v[False]]
    # in an inconsistent pair, did the judge pick whatever was shown first both times?
    first_both_times = sum(
        1 for i in inconsistent if both[i][True] == PairChoice.A and both[i][False] == PairChoice.B
    )
    second_both_times = sum(
        1 for i in inconsistent if both[i][True] == PairChoice.B and both[i][False] == PairChoice.A
    )
    verdict = {i: (v[True] if v[True] == v[False] else PairChoice.TIE) for i, v in both.items()}
    majority = human_majority_choices(run.project)
    shared = [(majority[i], verdict[i]) for i in verdict if i in majority]
    return {
        "pairs_both_orders": len(both),
        "position_bias_rate": len(inconsistent) / len(both) if both else None,
        "prefers_first": first_both_times,
        "prefers_second": second_both_times,
        "verdicts": dict(Counter(verdict.values())),
        "with_humans": len(shared),
        "agreement": (sum(h == j for h, j in shared) / len(shared)) if shared else None,
        "kappa": _kappa_or_none([h for h, _ in shared], [j for _, j in shared]),
    }
