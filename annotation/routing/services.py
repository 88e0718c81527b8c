"""Cross-model workflows of routing: which samples go to humans, in batches, within the policy's budget.

`routing_policy_for`, `routing_preview` (what the policy would route, nothing written),
`routing_route_next_batch` (writes ReviewTasks), and the hook the review queue calls after every answer:

    routing_after_answer(*, project) -> bool

It is cheap (the annotator's request runs it): with no active policy (cached) or routed items still open it
costs at most one small query. Once the open routed batch is fully answered and budget remains it queues
`routing_next_batch_task`, and a worker routes the next batch (refitting the learned router on all answers so
far), never beyond the budget and never a sample twice. Queuing twice routes one batch: the task re-checks
under the policy row's lock that no routed item is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import ReviewTask, RoutingPolicy, RoutingStrategy, SampleSignals, TaskKind
from annotation.routing import router
from annotation.routing import sample_signals as signal_core
from annotation.routing.plan import (
    RoutingPick,
    merge_audit_picks,
    plan_audit_slice,
    plan_estimation_batch,
    plan_routing_batch,
)
from annotation.routing.provenance import distribution_sources, router_conditions
from annotation.routing.signals import ProjectLabels, project_labels
from annotation.tasks import routing_next_batch_task
from synthstudio.jobs import enqueue
from synthstudio.models import Project, Sample
from synthstudio.vectors import cosine_knn

ROUTED_KINDS = (TaskKind.ROUTED, TaskKind.COLD_START)
ROUTING_ACTIVE_CACHE_SECONDS = 10  # how long another process may act on an old "is the policy active?" answer
ROUTING_REQUEUE_AFTER_SECONDS = (
    60  # a queued batch not routed by then (no worker, lost message) is queued again
)


def routing_policy_for(*, project: Project) -> RoutingPolicy:
    policy, _ = RoutingPolicy.objects.get_or_create(project=project)
    return policy


def routing_policy_saved(*, project: Project) -> bool:
    """Whether a lead has saved the project's policy (opening the routing page creates a default, unsaved one)."""
    return RoutingPolicy.objects.filter(project=project, updated_by__isnull=False).exists()


@dataclass(frozen=True)
class RoutingPreviewRow:
    sample: Sample
    priority: float
    reason: str
    kind: str
    llm_label: str
    offline: bool = False
    inclusion_probability: float | None = 1.0  # π with which the policy picked it (ALGORITHMS.md §8)
    is_audit: bool = False  # a Poisson draw (audit slice, estimation): the lead sees it, annotators never do


@dataclass(frozen=True)
class RoutingState:
    budget: int
    routed: int
    open_tasks: int
    answered_items: int

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.routed)


def routing_state(*, project: Project, policy: RoutingPolicy) -> RoutingState:
    routed = ReviewTask.objects.filter(project=project, kind__in=ROUTED_KINDS)
    return RoutingState(
        budget=policy.budget_items(Sample.objects.filter(project=project).count()),
        routed=routed.count(),
        open_tasks=routed.filter(is_open=True).count(),
        answered_items=Sample.objects.filter(project=project).human_verified().count(),
    )


def routing_preview(*, project: Project, policy: RoutingPolicy, limit: int = 20) -> list[RoutingPreviewRow]:
    """What the policy would route next (nothing is written)."""
    rows, _ = _plan_next_batch(project=project, policy=policy)
    return rows[:limit]


def routing_route_next_batch(*, project: Project, only_when_answered: bool = False) -> list[ReviewTask]:
    """Route the next batch now (if budget remains). Serialised per project by locking the policy row; with
    `only_when_answered` (the automatic routing a finished batch queues), nothing happens while routed items
    still wait for answers or once the lead has deactivated the policy (checked under the lock, so two answers
    completing a batch at once route one batch, not two)."""
    with transaction.atomic():
        policy = RoutingPolicy.objects.select_for_update().get(pk=routing_policy_for(project=project).pk)
        if policy.next_batch_queued_at is not None:  # whatever happens below, the queued request is served
            RoutingPolicy.objects.filter(pk=policy.pk).update(next_batch_queued_at=None)
        if only_when_answered and (not policy.is_active or _open_routed_tasks(project).exists()):
            return []
        if policy.strategy == RoutingStrategy.QUALITY_TARGET:  # phases of its own, not capped by the budget
            from annotation.routing.quality_target import quality_target_route

            return quality_target_route(project=project, policy=policy)
        rows, _ = _plan_next_batch(project=project, policy=policy)
        if not rows:
            return []
        batch = (ReviewTask.objects.filter(project=project).aggregate(b=Max("batch"))["b"] or 0) + 1
        tasks = ReviewTask.objects.bulk_create(
            [
                ReviewTask(
                    project=project,
                    sample=row.sample,
                    kind=row.kind,
                    priority=row.priority,
                    reason=row.reason[:300],
                    strategy=policy.strategy if row.kind == TaskKind.ROUTED else policy.cold_start_strategy,
                    batch=batch,
                    required_answers=policy.annotators_per_item,
                    inclusion_probability=row.inclusion_probability,
                    is_audit=row.is_audit,
                )
                for row in rows
            ]
        )
    return tasks


def routing_after_answer(*, project: Project) -> bool:
    """The hook the review queue calls after each committed answer (undo, edit, adjudication), inside the
    annotator's request: so it never plans a batch itself. With no active policy or routed items still open it
    costs at most one small query; once the open routed batch is fully answered it queues the next batch for
    a worker. Returns whether it queued one."""
    if not routing_policy_active(project=project):
        return False
    if _open_routed_tasks(project).exists():
        return False
    return routing_next_batch_enqueue(project=project)


def routing_policy_active(*, project: Project) -> bool:
    """Whether the project's policy routes on answers; cached, and RoutingPolicy.save clears the cache."""
    key = RoutingPolicy.active_cache_key(project)
    active = cache.get(key)
    if active is None:
        active = RoutingPolicy.objects.filter(project=project, is_active=True).exists()
        cache.set(key, active, ROUTING_ACTIVE_CACHE_SECONDS)
    return active


def routing_next_batch_enqueue(*, project: Project) -> bool:
    """Queue `routing_next_batch_task` (on commit) unless the budget is spent or a batch was queued less than
    ROUTING_REQUEUE_AFTER_SECONDS ago and not routed yet. Marks the policy so the routing page can say so.
    A second queuing is harmless: the task routes only while no routed item is open, checked under a lock."""
    policy = (
        RoutingPolicy.objects.filter(project=project, is_active=True)
        .defer("quality_state")  # the quality target's calibration state: large, not needed here
        .annotate(
            routed=_count_of(ReviewTask.objects.filter(project=OuterRef("project"), kind__in=ROUTED_KINDS)),
            sample_count=_count_of(Sample.objects.filter(project=OuterRef("project"))),
        )
        .first()
    )
    if policy is None or (
        policy.strategy != RoutingStrategy.QUALITY_TARGET  # a quality target is not capped by the budget
        and policy.routed >= policy.budget_items(policy.sample_count)
    ):
        return False
    now = timezone.now()
    queued_at = policy.next_batch_queued_at
    if queued_at is not None and now - queued_at < timedelta(seconds=ROUTING_REQUEUE_AFTER_SECONDS):
        return False
    RoutingPolicy.objects.filter(pk=policy.pk).update(next_batch_queued_at=now)
    enqueue(routing_next_batch_task, project.pk)
    return True


def _count_of(queryset) -> Coalesce:
    """COUNT(*) of a correlated queryset, as a subquery of one outer query."""
    counted = queryset.order_by().values("project").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _open_routed_tasks(project: Project):
    return ReviewTask.objects.filter(project=project, kind__in=ROUTED_KINDS, is_open=True)


def _plan_next_batch(
    *, project: Project, policy: RoutingPolicy
) -> tuple[list[RoutingPreviewRow], RoutingState]:
    state = routing_state(project=project, policy=policy)
    if policy.strategy == RoutingStrategy.QUALITY_TARGET:  # annotation.routing.quality_target: its own phases
        from annotation.routing.quality_target import quality_target_preview

        return quality_target_preview(project=project, policy=policy), state
    size = min(policy.batch_size, state.remaining)
    if size <= 0:
        return [], state
    routed_ids = set(ReviewTask.objects.filter(project=project).values_list("sample_id", flat=True))
    cold_start_left = max(0, policy.cold_start_size - state.routed)
    strategy = policy.cold_start_strategy if cold_start_left else policy.strategy
    kind = TaskKind.COLD_START if cold_start_left else TaskKind.ROUTED
    size = min(size, cold_start_left) if cold_start_left else size
    data = project_labels(
        project=project,
        with_embeddings=strategy
        in {"kmeans", "votek", "votek_two_stage", "learned", RoutingStrategy.ESTIMATION},
    )
    verified = data.verified
    routed = np.array([s.pk in routed_ids for s in data.samples], dtype=bool)
    candidates = np.flatnonzero(~routed & ~verified)
    # Poisson draws first, over every candidate, with recorded π (annotation.routing.plan): the estimation
    # strategy's whole batch, else the policy's audit slice; the strategy then fills the rest from the others.
    # Seeded by the batch's place, not by anything a human answered: the preview shows what routing will draw, a
    # test draws the same on every database (ids differ there), and the draw stays independent of the labels.
    draw_seed = (state.routed, len(candidates))
    signals = router_signals(project=project)
    if strategy == RoutingStrategy.ESTIMATION:
        # adaptive CDI: once the learned router has enough answers, π follows its predicted error (refitted on
        # the answers before this batch, so the draw stays independent of what it will sample)
        prediction = learned_error_prediction(data=data, signals=signals, verified=verified)
        draws = plan_estimation_batch(
            probs=data.probs,
            candidates=candidates,
            size=size,
            room=state.remaining,  # the draw's size varies around the batch size, never beyond the budget
            valid=data.valid,
            predicted_error=prediction.probability if prediction.mode == "learned" else None,
            seed=draw_seed,
        )
        size = 0
    else:
        draws = plan_audit_slice(
            probs=data.probs,
            candidates=candidates,
            size=size,
            audit_share=policy.audit_share,
            room=size,  # the batch keeps its size: the strategy fills what the draw leaves
            valid=data.valid,
            seed=draw_seed,
        )
        size -= len(draws)
    drawn = np.zeros(len(data.samples), dtype=bool)
    drawn[[p.index for p in draws]] = True
    candidates = candidates[~drawn[candidates]]
    if size <= 0:
        picks = []
    elif strategy == RoutingStrategy.LEARNED:
        picks = learned_picks(
            data=data, signals=signals, verified=verified, excluded=routed | drawn, size=size
        )
    else:
        student_disagrees = np.array(
            [
                bool(
                    (row := signals.get(s.pk)) is not None
                    and row.student_label
                    and data.llm_labels[i]
                    and row.student_label != data.llm_labels[i]
                )
                for i, s in enumerate(data.samples)
            ],
            dtype=bool,
        )
        picks = plan_routing_batch(
            strategy=strategy,
            probs=data.probs,
            candidates=candidates,
            size=size,
            embeddings=data.embeddings,
            student_disagrees=student_disagrees,
            valid=data.valid,
            seed=project.pk + state.routed,
            already_selected=np.flatnonzero(routed | verified | drawn),  # k-means / vote-k continue from them
            distribution_sources=(  # CoAnnotating's reasons say what produced each distribution
                distribution_sources(samples=data.samples)
                if strategy == RoutingStrategy.COANNOTATING
                else None
            ),
        )
    picks = merge_audit_picks(draws, picks)
    rows = [
        RoutingPreviewRow(
            data.samples[p.index],
            p.priority,
            p.reason,
            kind,
            data.llm_labels[p.index],
            bool(data.offline[p.index]),
            p.inclusion_probability,
            p.is_audit,
        )
        for p in picks
    ]
    return rows, state


def router_signals(*, project: Project) -> dict:
    """{sample id: SampleSignals} (student and neighbour agreement) for the learned router and its prior."""
    return {
        row.sample_id: row
        for row in SampleSignals.objects.filter(sample__project=project).only(
            "sample_id", "student_label", "student_probability", "knn_agreement"
        )
    }


def cross_fitted_error_by_sample(*, project: Project) -> dict[int, float] | None:
    """{sample id: P(LLM wrong)} from the learned router, cross-fitted over the human-verified items
    (router.cross_fitted_error): the estimates page's prediction of "the LLM is right", better than the LLM's
    own confidence once enough answers exist. None while the router cannot learn."""
    data = project_labels(project=project)
    verified = data.verified
    wrong = sum(data.samples[i].final_label != data.llm_labels[i] for i in np.flatnonzero(verified))
    if min(wrong, int(verified.sum()) - wrong) < router.CROSS_FIT_FOLDS * router.MIN_ANSWERS_PER_CLASS:
        return None  # no fold could learn: spare loading the embeddings
    data = project_labels(project=project, with_embeddings=True)  # reloaded: its own rows and mask
    items, reviewed, wrong, human_labels = learned_router_inputs(
        data=data, signals=router_signals(project=project), verified=data.verified
    )
    error = router.cross_fitted_error(
        items, reviewed=reviewed, llm_was_wrong=wrong, reviewed_labels=human_labels, seed=project.pk
    )
    if error is None:
        return None
    return {sample.pk: float(value) for sample, value in zip(data.samples, error, strict=True)}


def learned_router_inputs(
    *, data: ProjectLabels, signals: dict, verified: np.ndarray
) -> tuple[router.RouterItems, np.ndarray, np.ndarray, np.ndarray]:
    """The learned router's inputs for a project (annotation.routing.router): the items, the human-verified
    ones, whether the LLM was wrong on each of those, and the reviewers' labels (they train a second student).
    Items the LLM gave no valid label count as fully suspicious (student and neighbours disagree)."""
    names = data.label_names
    column = {name: index for index, name in enumerate(names)}
    llm_label = np.array([column.get(label, 0) for label in data.llm_labels], dtype=np.int64)
    student = np.array([_signal(signals, s.pk, "student_probability", 0.5) for s in data.samples])
    agreement = np.array([_signal(signals, s.pk, "knn_agreement", 0.5) for s in data.samples])
    student[~data.valid], agreement[~data.valid] = 0.0, 0.0
    neighbours = None
    if data.embeddings is not None and len(data.samples) > 1:
        neighbours, _ = cosine_knn(data.embeddings, signal_core.KNN_AGREEMENT_K)
    # generation conditions, config and origin as features ("topic=sport"); annotation.routing.provenance
    conditions, condition_names = router_conditions(samples=data.samples)
    items = router.RouterItems(
        probs=data.probs,
        llm_label=llm_label,
        student_prob=student,
        knn_agreement=agreement,
        text_length=np.array([len(s.text) for s in data.samples]),
        neighbours=neighbours,
        embeddings=data.embeddings if data.embeddings is not None and len(data.samples) > 1 else None,
        conditions=conditions,
        condition_names=condition_names,
    )
    reviewed = np.flatnonzero(verified)
    wrong = np.array([data.samples[i].final_label != data.llm_labels[i] for i in reviewed], dtype=bool)
    human_labels = np.array([column.get(data.samples[i].final_label, -1) for i in reviewed], dtype=np.int64)
    return items, reviewed, wrong, human_labels


def learned_error_prediction(
    *, data: ProjectLabels, signals: dict, verified: np.ndarray
) -> router.ErrorPrediction:
    """P(LLM label wrong) per item from the learned router refitted on every human-verified item ("cold_start"
    mode, a prior that ranks but is not calibrated, while the answers are too few)."""
    items, reviewed, wrong, human_labels = learned_router_inputs(
        data=data, signals=signals, verified=verified
    )
    return router.predict_error(items, reviewed=reviewed, llm_was_wrong=wrong, reviewed_labels=human_labels)


def learned_picks(
    *, data: ProjectLabels, signals: dict, verified: np.ndarray, excluded: np.ndarray, size: int
) -> list[RoutingPick]:
    """The learned router's next `size` picks (highest predicted error first), refitted on every human-verified
    item; the quality target's learned score ranks items with the same call."""
    items, reviewed, wrong, human_labels = learned_router_inputs(
        data=data, signals=signals, verified=verified
    )
    batch = router.route_next_batch(
        items,
        reviewed=reviewed,
        llm_was_wrong=wrong,
        batch_size=size,
        exclude=np.flatnonzero(excluded),
        reviewed_labels=human_labels,
    )
    return [
        RoutingPick(
            int(index), float(error), reason + ("; no valid LLM label" if not data.valid[index] else "")
        )
        for index, error, reason in zip(batch.indices, batch.error_probability, batch.reasons, strict=True)
    ]


def _signal(signals: dict, sample_id: int, name: str, default: float) -> float:
    row = signals.get(sample_id)
    value = getattr(row, name, None) if row else None
    return default if value is None else float(value)
