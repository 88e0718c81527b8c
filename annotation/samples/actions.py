"""Bulk actions on samples: the services behind the samples page's action buttons.

`sample_action_start` resolves the selection (ids the lead ticked, or every sample matching the page's filter),
runs up to INLINE_LIMIT samples in the request and hands larger selections to a worker as a SampleActionJob
(synthstudio.jobs machinery: lease, heartbeat, stall recovery, Retry). Each action works in batches of BATCH
ids, each batch one transaction, and skips samples it already applies to, so a job that is retried or runs
twice does no harm:

- send to review: an open review task of kind "Sent by a lead" (not counted against the routing budget), with
  the routing policy's annotators per item; samples already waiting in the queue are skipped;
- mark gold: a gold item with the sample's final label (a sample without a final label of the codebook is
  skipped), and its gold check in the queue, as annotation.review.lead.gold_item_mark does for one sample;
- exclude from / include in snapshots: Sample.excluded_from_snapshots, which curated snapshots respect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotation.models import GoldItem, ReviewTask, RoutingPolicy, TaskKind
from annotation.review.queue import review_tasks_create, write_transaction
from annotation.tasks import sample_action_task
from synthstudio.jobs import enqueue
from synthstudio.models import JobStatus, Project, Sample, SampleAction, SampleActionJob
from synthstudio.sample_search import SampleSearch, samples_matching

INLINE_LIMIT = 1000  # more samples than this run as a background job
BATCH = 1000
SENT_BY_LEAD_REASON = "sent by a lead"


@dataclass(frozen=True)
class ActionOutcome:
    action: str
    changed: int
    skipped: int

    @property
    def message(self) -> str:
        return outcome_message(self.action, self.changed, self.skipped)


def outcome_message(action: str, changed: int, skipped: int) -> str:
    def samples(count: int) -> str:
        return f"{count} sample{'' if count == 1 else 's'}"

    if action == SampleAction.SEND_TO_REVIEW:
        text, why = f"Sent {samples(changed)} to review", "already waiting in the queue"
    elif action == SampleAction.MARK_GOLD:
        text, why = (
            f"Marked {samples(changed)} as gold",
            "without a final label of the codebook, or gold already",
        )
    elif action == SampleAction.EXCLUDE:
        text, why = f"Excluded {samples(changed)} from snapshots", "already excluded"
    else:
        text, why = f"Included {samples(changed)} in snapshots again", "not excluded"
    return f"{text}." + (f" Skipped {samples(skipped)} {why}." if skipped else "")


# ------------------------------------------------------------------------------------------ the actions


def _send_to_review(project: Project, ids: Sequence[int], user) -> int:
    policy = RoutingPolicy.objects.filter(project=project).first()
    tasks = review_tasks_create(
        project=project,
        samples_with_reasons=[
            (sample, SENT_BY_LEAD_REASON)
            for sample in Sample.objects.filter(pk__in=ids).only("id", "project_id")
        ],
        kind=TaskKind.MANUAL,
        required_answers=policy.annotators_per_item if policy else 1,
    )
    return len(tasks)


def _mark_gold(project: Project, ids: Sequence[int], user) -> int:
    codebook = project.codebook
    label_names = set(codebook.label_names) if codebook else set()
    labels = {
        sample_id: label
        for sample_id, label in Sample.objects.filter(pk__in=ids).values_list("id", "final_label")
        if label in label_names
    }
    existing = {gold.sample_id: gold for gold in GoldItem.objects.filter(sample_id__in=labels)}
    changed = [gold for sample_id, gold in existing.items() if gold.label != labels[sample_id]]
    for gold in changed:
        gold.label = labels[gold.sample_id]
    GoldItem.objects.bulk_update(changed, ["label"])
    GoldItem.objects.bulk_create(
        [
            GoldItem(project=project, sample_id=sample_id, label=label, created_by=user)
            for sample_id, label in labels.items()
            if sample_id not in existing
        ]
    )
    checked = set(
        ReviewTask.objects.filter(sample_id__in=labels, kind=TaskKind.GOLD, is_open=True).values_list(
            "sample_id", flat=True
        )
    )
    ReviewTask.objects.bulk_create(
        [
            ReviewTask(
                project=project, sample_id=sample_id, kind=TaskKind.GOLD, reason="gold check", strategy="gold"
            )
            for sample_id in labels
            if sample_id not in checked
        ]
    )
    return len(labels) - len(existing) + len(changed)


def _set_excluded(excluded: bool) -> Callable[[Project, Sequence[int], object], int]:
    def apply(project: Project, ids: Sequence[int], user) -> int:
        return Sample.objects.filter(pk__in=ids, excluded_from_snapshots=not excluded).update(
            excluded_from_snapshots=excluded
        )

    return apply


ACTIONS: dict[str, Callable[[Project, Sequence[int], object], int]] = {
    SampleAction.SEND_TO_REVIEW: _send_to_review,
    SampleAction.MARK_GOLD: _mark_gold,
    SampleAction.EXCLUDE: _set_excluded(True),
    SampleAction.INCLUDE: _set_excluded(False),
}


def sample_action_apply(
    *,
    project: Project,
    user,
    action: str,
    sample_ids: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> ActionOutcome:
    """Apply `action` to the project's samples among `sample_ids`, BATCH at a time; `progress(changed, done)`
    after each batch. Ids of other projects' samples are ignored (counted as skipped)."""
    apply = ACTIONS[action]
    changed = done = 0
    for start in range(0, len(sample_ids), BATCH):
        batch = list(
            Sample.objects.filter(project=project, pk__in=sample_ids[start : start + BATCH]).values_list(
                "pk", flat=True
            )
        )
        with write_transaction():
            changed += apply(project, batch, user)
        done = min(len(sample_ids), start + BATCH)
        if progress:
            progress(changed, done)
    return ActionOutcome(action=action, changed=changed, skipped=len(sample_ids) - changed)


def sample_action_start(
    *, project: Project, user, action: str, sample_ids: Sequence[int] = (), search: SampleSearch | None = None
) -> ActionOutcome | SampleActionJob:
    """Run `action` on the ticked `sample_ids`, or (with `search`) on every sample matching that filter: inline
    up to INLINE_LIMIT samples (returns the outcome), else as a background job (returns the job)."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}.")
    if search is not None:
        ids = list(samples_matching(project=project, search=search).values_list("pk", flat=True))
    else:
        ids = list(
            Sample.objects.filter(project=project, pk__in=list(sample_ids)).values_list("pk", flat=True)
        )
    if len(ids) <= INLINE_LIMIT:
        return sample_action_apply(project=project, user=user, action=action, sample_ids=ids)
    job = SampleActionJob.objects.create(
        project=project,
        created_by=user,
        action=action,
        sample_ids=ids,
        search=search.as_dict() if search else {},
        total=len(ids),
    )
    enqueue(sample_action_task, job.pk)
    return job


def sample_action_job_run(*, job: SampleActionJob) -> SampleActionJob:
    """The worker's side of a large bulk action (annotation.tasks.sample_action_task)."""

    def progress(changed: int, done: int) -> None:
        job.changed = changed
        job.report_progress(done=done, changed=changed)

    outcome = sample_action_apply(
        project=job.project,
        user=job.created_by,
        action=job.action,
        sample_ids=job.sample_ids,
        progress=progress,
    )
    job.skipped = outcome.skipped
    job.save(update_fields=["skipped"])
    job.mark_finished(JobStatus.SUCCEEDED, message=outcome.message)
    return job
