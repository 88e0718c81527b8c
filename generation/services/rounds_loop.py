"""Automatic dataset-level rounds: a config with N rounds runs generate → label → route → (humans answer) →
next round by itself, until N rounds or an early stop (generation.round_rules.round_stop_reason).

The state lives on each round's run (`round_state`, `round_labelling_run_id`, `round_stop_reason`,
`round_report`):

    generating ──run succeeded──▶ labelling ──labelling run finished──▶ awaiting_answers
        ──no routed item of the round open (or a lead's "continue now")──▶ continued (next run: generating)
                                                                      └──▶ stopped (with the reason)

A failed or cancelled generation/labelling run stops the loop with that reason. `rounds_advance` makes one or
more of these steps and is safe to call any number of times from several processes (each step is a
compare-and-set on the state read). It is called by `generation.tasks.rounds_advance_task`, queued when a
step finishes (model signals connected in generation.tasks) and by the worker heartbeat's throttled sweep
(`rounds_advance_due_if_due`, the same hook as synthstudio.jobs.recover_stalled_jobs_if_due), so a lost
message only delays a step.

Labelling, routing and "does a routed item of the round wait for a human" belong to the annotation app, which
this app may not import (ARCHITECTURE.md: synthstudio ← generation ← annotation ← evaluation). The loop asks
them through `RoundSteps`, which annotation registers from its AppConfig.ready (annotation.round_steps):
labelling reuses the project's latest LLM labelling settings (endpoint, method, samples per item, temperature,
demos), or the offline labeller when the project never labelled with an endpoint; routing is the project's
routing policy.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from generation.models import GenerationRun, RoundState
from generation.round_rules import RoundOutcome, round_stop_reason
from generation.services.rounds import (
    generated_label_of,
    next_round_weights,
    reviewed_and_corrected,
    sample_condition_stats,
    sample_rows,
    student_stats,
)
from generation.services.runs import run_start
from synthstudio.models import HUMAN_VERIFIED_SOURCES, JobStatus, LLMAnnotation, Sample

logger = logging.getLogger(__name__)

ACTIVE_STATES = (RoundState.GENERATING, RoundState.LABELLING, RoundState.AWAITING_ANSWERS)


@dataclass(frozen=True)
class LabellingState:
    """Where a round's labelling run stands, as the loop needs it."""

    finished: bool
    succeeded: bool
    status_text: str  # e.g. "failed", for the stop reason


class RoundSteps(Protocol):
    """The steps of a round that the annotation app takes (registered by it: round_steps_register)."""

    def labelling_start(self, run: GenerationRun) -> int:
        """Start labelling the project's unlabelled samples; the labelling run's id. ValueError with a
        message when they cannot be labelled (the loop stops with it)."""
        ...

    def labelling_state(self, labelling_run_id: int) -> LabellingState | None:
        """None when the labelling run is gone."""
        ...

    def route(self, run: GenerationRun) -> None:
        """Route a batch by the project's routing policy (nothing when its budget is spent)."""
        ...

    def waits_for_answers(self, samples: QuerySet[Sample]) -> bool:
        """Whether an item routed to humans among these samples is still open."""
        ...


_steps: RoundSteps | None = None


def round_steps_register(steps: RoundSteps) -> None:
    """Called once by the annotation app's AppConfig.ready."""
    global _steps
    _steps = steps


def round_steps() -> RoundSteps:
    if _steps is None:
        raise RuntimeError(
            "No app registered the labelling and routing steps of automatic rounds "
            "(annotation's AppConfig.ready does: is 'annotation' in INSTALLED_APPS?)."
        )
    return _steps


def round_samples(run: GenerationRun) -> QuerySet[Sample]:
    return Sample.objects.filter(generation_items__run=run).distinct()


def loop_start_if_configured(run: GenerationRun) -> bool:
    """A first run of a config with more than one round enters the loop (called when the run is created)."""
    if run.round_state or run.previous_round_id is not None or run.config.rounds <= 1:
        return False
    updated = GenerationRun.objects.filter(pk=run.pk, round_state="").update(
        round_state=RoundState.GENERATING
    )
    run.round_state = RoundState.GENERATING if updated else run.round_state
    return bool(updated)


def rounds_advance(*, run_id: int, continue_now: bool = False) -> GenerationRun | None:
    """Take every step of the run's loop that can be taken now; returns the next round's run when it started
    one. `continue_now`: a lead does not wait for the round's open routed items."""
    for _ in range(len(ACTIVE_STATES) + 1):
        run = GenerationRun.objects.select_related("config__codebook", "project").get(pk=run_id)
        if run.round_state == RoundState.GENERATING:
            if not _label_round(run):
                return None
        elif run.round_state == RoundState.LABELLING:
            if not _route_round(run):
                return None
        elif run.round_state == RoundState.AWAITING_ANSWERS:
            return _finish_round(run, continue_now=continue_now)
        else:
            return None
    return None


def _move(run: GenerationRun, from_state: str, **changes) -> bool:
    moved = bool(GenerationRun.objects.filter(pk=run.pk, round_state=from_state).update(**changes))
    if (
        moved
    ):  # this process's list of the project's runs awaiting answers is stale now (and after the commit)
        key = _awaiting_cache_key(run.project_id)
        cache.delete(key)
        transaction.on_commit(lambda: cache.delete(key))
    return moved


def _stop(run: GenerationRun, from_state: str, reason: str, report: dict | None = None) -> bool:
    changes = {"round_state": RoundState.STOPPED, "round_stop_reason": reason}
    if report is not None:
        changes["round_report"] = report
    return _move(run, from_state, **changes)


def _label_round(run: GenerationRun) -> bool:
    """generating → labelling once the generation run succeeded (stopped when it failed or was cancelled)."""
    if not run.is_finished:
        return False
    if run.status != JobStatus.SUCCEEDED:
        _stop(run, RoundState.GENERATING, f"The round's generation run {run.get_status_display().lower()}.")
        return False
    try:
        started = _start_labelling(run)
    except ValueError as error:  # e.g. the project has no codebook: say so instead of retrying forever
        _stop(run, RoundState.GENERATING, f"The round's samples could not be labelled: {error}")
        return False
    return started


def _start_labelling(run: GenerationRun) -> bool:
    """The labelling run and the move to `labelling` in one transaction: one labelling run per round."""
    with transaction.atomic():
        labelling_id = round_steps().labelling_start(run)
        if not _move(run, RoundState.GENERATING, round_state=RoundState.LABELLING,
                     round_labelling_run_id=labelling_id):  # fmt: skip
            transaction.set_rollback(True)  # another process took this step: no second labelling run
            return False
    return True


def _route_round(run: GenerationRun) -> bool:
    """labelling → awaiting_answers once the labelling run finished, routing a batch by the project's
    policy (nothing when its budget is spent: the round then does not wait)."""
    steps = round_steps()
    labelling = (
        steps.labelling_state(run.round_labelling_run_id) if run.round_labelling_run_id is not None else None
    )
    if labelling is None:
        _stop(run, RoundState.LABELLING, "The round's labelling run was deleted.")
        return False
    if not labelling.finished:
        return False
    if not labelling.succeeded:
        _stop(run, RoundState.LABELLING, f"The round's labelling run {labelling.status_text}.")
        return False
    with transaction.atomic():
        if not _move(run, RoundState.LABELLING, round_state=RoundState.AWAITING_ANSWERS):
            return False
        steps.route(run)
    return True


def round_waits_for_answers(run: GenerationRun) -> bool:
    return round_steps().waits_for_answers(round_samples(run))


def _finish_round(run: GenerationRun, *, continue_now: bool) -> GenerationRun | None:
    """awaiting_answers → continued (next round started with new weights) or stopped, with the round report."""
    if not continue_now and round_waits_for_answers(run):
        return None
    report = round_report(run)
    reason = round_stop_reason(
        RoundOutcome(
            round_number=report["round"],
            rounds=run.config.rounds,
            reviewed=report["reviewed"],
            corrected=report["corrected"],
            new_correct=report["new_correct"],
            target_corrected_share=run.config.rounds_target_corrected_share,
        )
    )
    if reason:
        _stop(run, RoundState.AWAITING_ANSWERS, reason, {**report, "stop_reason": reason})
        return None
    with transaction.atomic():
        if not _move(run, RoundState.AWAITING_ANSWERS, round_state=RoundState.CONTINUED, round_report=report):
            return None
        following = run_start(
            config=run.config, user=run.created_by, weights=report["next_weights"], previous=run
        )
        GenerationRun.objects.filter(pk=following.pk).update(round_state=RoundState.GENERATING)
        following.round_state = RoundState.GENERATING
    return following


def round_report(run: GenerationRun) -> dict:
    """The figures the timeline shows for one finished round: its samples, the humans' corrected share, the
    held-out student's error (trained on every verified item of the config so far), per condition value,
    the weights this round used and those of the next one."""
    samples = round_samples(run)
    per_value = sample_condition_stats(samples)
    correct_new = 0
    earlier = samples.filter(generation_items__run__pk__lt=run.pk).values_list("pk", flat=True)
    new_ids = set(samples.exclude(pk__in=list(earlier)).values_list("pk", flat=True))
    llm_labels = dict(
        LLMAnnotation.objects.filter(sample_id__in=new_ids, is_current=True).values_list("sample_id", "label")
    )
    rows = sample_rows(samples)
    reviewed_ids, corrected_ids = reviewed_and_corrected(rows)
    reviewed, corrected = len(reviewed_ids), len(corrected_ids)
    for row in rows:
        generated_label = generated_label_of(row["provenance"])
        if row["id"] in new_ids and row["id"] not in corrected_ids:
            held = (
                row["final_label"]
                if row["final_source"] in HUMAN_VERIFIED_SOURCES
                else llm_labels.get(row["id"], "")
            )
            correct_new += bool(generated_label) and held == generated_label
    students, scored, wrong = student_stats(run.config)
    for name, values in students.items():
        for value, counts in values.items():
            per_value.setdefault(name, {}).setdefault(value, {"generated": 0, "reviewed": 0, "corrected": 0})
            per_value[name][value].update(counts)
    weights, _ = next_round_weights(run, students=students)
    return {
        "round": run.round_number,
        "samples": len(rows),
        "new_samples": len(new_ids),
        "reviewed": reviewed,
        "corrected": corrected,
        "corrected_share": round(corrected / reviewed, 4) if reviewed else None,
        "new_correct": correct_new,
        "student_scored": scored,
        "student_error": round(wrong / scored, 4) if scored else None,
        "values": per_value,
        "weights": run.condition_weights or {},
        "next_weights": weights,
    }


# ------------------------------------------------------------------------------------------ triggers


def rounds_advance_enqueue(run_ids) -> None:
    from generation.tasks import rounds_advance_task
    from synthstudio.jobs import enqueue

    for run_id in run_ids:
        enqueue(rounds_advance_task, run_id)


def rounds_due() -> list[int]:
    """Runs whose loop may be able to take a step: generating ones whose run ended, and every labelling or
    awaiting one (rounds_advance re-checks each cheaply)."""
    ended = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
    return list(
        GenerationRun.objects.filter(round_state=RoundState.GENERATING, status__in=ended).values_list(
            "pk", flat=True
        )
    ) + list(
        GenerationRun.objects.filter(
            round_state__in=[RoundState.LABELLING, RoundState.AWAITING_ANSWERS]
        ).values_list("pk", flat=True)
    )


_last_sweep = 0.0
_sweep_lock = threading.Lock()


AWAITING_CACHE_SECONDS = 10


def _awaiting_cache_key(project_id: int) -> str:
    return f"rounds:awaiting-answers:{project_id}"


def runs_awaiting_answers(project_id: int) -> list[int]:
    """The project's loop runs waiting for human answers; read on every answer, so cached per process for
    AWAITING_CACHE_SECONDS (cleared in this process when a run starts or stops waiting)."""
    key = _awaiting_cache_key(project_id)
    run_ids = cache.get(key)
    if run_ids is None:
        run_ids = list(
            GenerationRun.objects.filter(
                project_id=project_id, round_state=RoundState.AWAITING_ANSWERS
            ).values_list("pk", flat=True)
        )
        cache.set(key, run_ids, AWAITING_CACHE_SECONDS)
    return run_ids


def rounds_advance_due_if_due() -> None:
    """Queue rounds_advance for every loop that may move, at most every JOB_STALL_SECONDS / 4 per process:
    called from each worker heartbeat, like recover_stalled_jobs_if_due. Never raises."""
    global _last_sweep
    interval = max(1.0, settings.JOB_STALL_SECONDS / 4)
    with _sweep_lock:
        if time.monotonic() - _last_sweep < interval:
            return
        _last_sweep = time.monotonic()
    try:
        rounds_advance_enqueue(rounds_due())
    except Exception:  # a database hiccup: the next beat looks again
        logger.warning("Could not look for rounds to advance", exc_info=True)


# ------------------------------------------------------------------------------------------ timeline


@dataclass(frozen=True)
class TimelineValue:
    """One condition value in one round: its samples, the share humans corrected, the held-out student's
    error on its verified items (all rounds so far), and the weight the round was generated with."""

    dimension: str
    value: str
    samples: int
    corrected_share: float | None
    student_error: float | None
    weight: float


@dataclass(frozen=True)
class TimelineRound:
    run: GenerationRun
    report: dict  # round_report; empty while the round is under way
    values: list[TimelineValue]

    @property
    def under_way(self) -> bool:
        return self.run.round_state in ACTIVE_STATES


def _timeline_values(run: GenerationRun) -> list[TimelineValue]:
    weights = run.condition_weights or {}
    rows = []
    for name, values in sorted(((run.round_report or {}).get("values") or {}).items()):
        for value, counts in sorted(values.items()):
            reviewed, scored = counts.get("reviewed", 0), counts.get("student_scored", 0)
            rows.append(
                TimelineValue(
                    dimension=name,
                    value=value,
                    samples=counts.get("generated", 0),
                    corrected_share=counts.get("corrected", 0) / reviewed if reviewed else None,
                    student_error=counts.get("student_wrong", 0) / scored if scored else None,
                    weight=float(weights.get(name, {}).get(value, 1.0)),
                )
            )
    return rows


def rounds_timeline(*, run: GenerationRun | None = None, config=None) -> list[TimelineRound]:
    """The rounds of the loop `run` belongs to (or of the config's latest loop), first round first; empty
    when there is no loop."""
    if run is None and config is not None:
        run = (
            GenerationRun.objects.filter(config__project=config.project, config__name=config.name)
            .exclude(round_state="")
            .order_by("-pk")
            .first()
        )
    if run is None or not run.round_state:
        return []
    chain = [run]
    seen = {run.pk}
    while chain[0].previous_round_id and chain[0].previous_round_id not in seen:
        earlier = GenerationRun.objects.filter(pk=chain[0].previous_round_id).exclude(round_state="").first()
        if earlier is None:
            break
        chain.insert(0, earlier)
        seen.add(earlier.pk)
    while True:
        later = (
            GenerationRun.objects.filter(previous_round=chain[-1])
            .exclude(round_state="")
            .exclude(pk__in=seen)
            .first()
        )
        if later is None:
            break
        chain.append(later)
        seen.add(later.pk)
    return [
        TimelineRound(run=member, report=member.round_report or {}, values=_timeline_values(member))
        for member in chain
    ]
