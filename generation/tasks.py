"""Celery tasks of the generation app: take an id, call a service. The name is pinned (queued messages name it)
and the limits come from synthstudio.task_limits. Idempotent: synthstudio.jobs.run_job skips a run that
finished or that a live worker holds; a run resumed after a crash skips finished items (RunExecution keeps its
own lease inside the run). Each shard of a sharded run is a job of its own (generation.services.shards).
Stalled runs and shards are found by synthstudio.jobs.recover_stalled_jobs like every job.

Imports go one way: generation.services.runs imports this module to enqueue, and each task imports the
service it calls inside its body."""

from __future__ import annotations

from celery import Task, shared_task

from generation.models import GenerationRun, GenerationShard
from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job


@shared_task(bind=True, acks_late=True, name="generation.run", **task_limits.GENERATION.options())
def generation_run_task(self: Task, run_id: int) -> None:
    from generation.services.runs import run_execute

    run_job(self, GenerationRun.objects.all(), run_id, lambda run: run_execute(run_id=run.pk))


@shared_task(bind=True, acks_late=True, name="generation.run_shard", **task_limits.GENERATION.options())
def generation_shard_task(self: Task, shard_id: int) -> None:
    from generation.services.shards import shard_execute

    run_job(self, GenerationShard.objects.all(), shard_id, lambda shard: shard_execute(shard_id=shard.pk))


def generation_run_retry(run: GenerationRun) -> None:
    """Retry also sends again the items whose calls never reached the endpoint (run_resume)."""
    from generation.services.runs import run_resume

    run_resume(run=run)


def generation_shard_retry(shard: GenerationShard) -> None:
    """A failed shard is retried through its run (Resume queues every shard that ended)."""
    from generation.services.runs import run_resume

    run_resume(run=shard.run)


register_job_kind(GenerationRun, generation_run_task, retry=generation_run_retry)
register_job_kind(GenerationShard, generation_shard_task, retry=generation_shard_retry)


# ------------------------------------------------------------------------------------------ automatic rounds

from django.db.models.signals import post_save  # noqa: E402 - this section is appended (shared file)


@shared_task(bind=True, acks_late=True, name="generation.rounds_advance", **task_limits.SIGNALS.options())
def rounds_advance_task(self: Task, run_id: int) -> None:
    """One or more steps of an automatic-rounds loop (generation.services.rounds_loop). Not a job row: the
    state lives on the run, every step is a compare-and-set, so a duplicate message changes nothing. Limits
    as a signals run: the step that ends a round embeds the verified items once and trains the student."""
    from generation.services.rounds_loop import rounds_advance

    rounds_advance(run_id=run_id)


def _rounds_run_saved(sender, instance: GenerationRun, created: bool, **kwargs) -> None:
    """A new first run of a multi-round config enters the loop; a loop run that ended takes its next step."""
    from generation.models import RoundState
    from generation.services.rounds_loop import loop_start_if_configured, rounds_advance_enqueue

    if created:
        loop_start_if_configured(instance)
    elif instance.round_state == RoundState.GENERATING and instance.is_finished:
        rounds_advance_enqueue([instance.pk])


def _rounds_labelling_saved(sender, instance, created: bool, **kwargs) -> None:
    from generation.models import RoundState
    from generation.services.rounds_loop import rounds_advance_enqueue

    if not created and instance.is_finished:
        rounds_advance_enqueue(
            GenerationRun.objects.filter(
                round_state=RoundState.LABELLING, round_labelling_run_id=instance.pk
            ).values_list("pk", flat=True)
        )


def _rounds_answer_saved(sender, instance, created: bool, **kwargs) -> None:
    """A human answer may close a round's last routed item. Which loops of the project wait for answers is
    cached per process (rounds_loop.runs_awaiting_answers), so the annotator's request seldom pays a query; a
    stale empty answer only delays the step to the next worker heartbeat's sweep."""
    from generation.services.rounds_loop import rounds_advance_enqueue, runs_awaiting_answers

    run_ids = runs_awaiting_answers(instance.sample.project_id)
    if run_ids:
        rounds_advance_enqueue(run_ids)


def _rounds_heartbeat_saved(sender, **kwargs) -> None:
    """Each worker heartbeat (synthstudio.worker_heartbeat writes the row from its thread, which also runs
    recover_stalled_jobs_if_due): the same throttled sweep for loops whose step-finished signal was missed."""
    from generation.services.rounds_loop import rounds_advance_due_if_due

    rounds_advance_due_if_due()


post_save.connect(_rounds_run_saved, sender=GenerationRun, dispatch_uid="rounds_run_saved")
post_save.connect(_rounds_labelling_saved, sender="annotation.LabellingRun", dispatch_uid="rounds_labelling")
post_save.connect(_rounds_answer_saved, sender="synthstudio.HumanAnnotation", dispatch_uid="rounds_answer")
post_save.connect(_rounds_heartbeat_saved, sender="synthstudio.WorkerHeartbeat", dispatch_uid="rounds_beat")
