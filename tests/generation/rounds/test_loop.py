"""Automatic rounds end to end at service level with the offline generator and the offline labeller: the
state machine on the runs, the humans' answers that move it, a lead's "continue now", the early stops, the
worker-heartbeat sweep and the timeline on the run and config pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import LabellingRun, ReviewTask, RoutingPolicy
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_next
from generation.models import GenerationRun, RoundState
from generation.prompts import DEFAULT_TEMPLATE
from generation.services import rounds_loop
from generation.services.configs import config_create_version
from generation.services.rounds import run_next_round
from generation.services.runs import run_start
from synthstudio.models import JobStatus, Sample, WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def routing(project):
    """Every sample goes to humans (random routing, whole budget, one batch, one annotator)."""
    return RoutingPolicy.objects.create(
        project=project, strategy="random", budget_share=1.0, batch_size=10_000, annotators_per_item=1
    )


def loop_config(project, lead, **values):
    base = {
        "endpoint": None,
        "template": DEFAULT_TEMPLATE,
        "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
        "target_count": 8,
        "sampling_mode": "balanced",
        "rounds": 2,
    }
    base.update(values)
    return config_create_version(project=project, user=lead, name="looped", values=base)


def start_loop(config, lead, capture) -> GenerationRun:
    with capture(execute=True):
        run = run_start(config=config, user=lead)
    run.refresh_from_db()
    return run


def answer_round(run, annotator, capture, label_for) -> int:
    """The annotator answers routed items, each answer committed on its own (as in the review queue), until
    the run's round stops waiting (its last answer starts the next round, whose items are routed at once)."""
    answered = 0
    while GenerationRun.objects.get(pk=run.pk).round_state == RoundState.AWAITING_ANSWERS:
        with capture(execute=True):
            assignment = review_next(project=run.project, annotator=annotator)
            assert assignment is not None, "nothing left to answer but the round still waits"
            review_answer_submit(assignment=assignment, label=label_for(assignment.task.sample))
        answered += 1
    return answered


def confirm_generated_label(sample: Sample) -> str:
    """Seed samples are routed too: they have no generated label, any answer does."""
    return (sample.provenance or {}).get("label") or "positive"


def humans_correct_acting(sample: Sample) -> str:
    """Confirm every label except on 'acting' samples, whose generated label humans always correct."""
    generated = (sample.provenance or {}).get("label") or sample.final_label or "positive"
    if (sample.provenance or {}).get("conditions", {}).get("topic") == "acting":
        return "negative" if generated == "positive" else "positive"
    return generated


def test_a_two_round_config_runs_label_route_wait_next_round_and_stop_by_itself(
    project, lead, annotator, samples, routing, django_capture_on_commit_callbacks, client
):
    config = loop_config(project, lead)
    first = start_loop(config, lead, django_capture_on_commit_callbacks)

    # generated, labelled by the offline labeller, routed: now it waits for the humans
    assert first.status == JobStatus.SUCCEEDED and first.round_state == RoundState.AWAITING_ANSWERS
    labelling = LabellingRun.objects.get(pk=first.round_labelling_run_id)
    assert labelling.status == JobStatus.SUCCEEDED and labelling.method == "offline"
    round_ids = set(Sample.objects.filter(generation_items__run=first).values_list("pk", flat=True))
    assert len(round_ids) == 8
    assert round_ids <= set(ReviewTask.objects.filter(is_open=True).values_list("sample_id", flat=True))
    assert GenerationRun.objects.count() == 1

    answer_round(first, annotator, django_capture_on_commit_callbacks, humans_correct_acting)

    first.refresh_from_db()
    second = GenerationRun.objects.get(previous_round=first)
    assert first.round_state == RoundState.CONTINUED and not first.round_stop_reason
    report = first.round_report
    assert (report["round"], report["samples"], report["reviewed"], report["corrected"]) == (1, 8, 8, 4)
    assert report["corrected_share"] == 0.5
    assert report["values"]["topic"]["acting"]["corrected"] == 4
    assert report["values"]["topic"]["plot"]["corrected"] == 0
    assert second.round_number == 2 and second.condition_weights == report["next_weights"]
    assert second.condition_weights["topic"]["acting"] > 1 > second.condition_weights["topic"]["plot"]
    assert second.round_state == RoundState.AWAITING_ANSWERS

    answer_round(second, annotator, django_capture_on_commit_callbacks, humans_correct_acting)

    second.refresh_from_db()
    assert second.round_state == RoundState.STOPPED
    assert second.round_stop_reason == "Reached the configured 2 rounds."
    assert second.round_report["stop_reason"] == second.round_stop_reason
    assert GenerationRun.objects.count() == 2

    client.force_login(lead)
    page = client.get(reverse("generation:run_detail", args=[project.id, second.pk])).content.decode()
    assert 'id="rounds-timeline"' in page and 'id="round-1"' in page and 'id="round-2"' in page
    assert "Reached the configured 2 rounds." in page and "corrected 50%" in page
    config_page = client.get(
        reverse("generation:config_detail", args=[project.id, config.pk])
    ).content.decode()
    assert 'id="rounds-timeline"' in config_page and "Reached the configured 2 rounds." in config_page


def test_a_lead_continues_a_waiting_round_now_through_the_next_round_action(
    project, lead, samples, routing, django_capture_on_commit_callbacks
):
    config = loop_config(project, lead, rounds=3)
    first = start_loop(config, lead, django_capture_on_commit_callbacks)
    assert first.round_state == RoundState.AWAITING_ANSWERS
    with django_capture_on_commit_callbacks(execute=True):
        second = run_next_round(run=first, user=lead)
    first.refresh_from_db()
    assert first.round_state == RoundState.CONTINUED and first.round_report["reviewed"] == 0
    assert second.previous_round_id == first.pk and second.round_number == 2
    second.refresh_from_db()
    assert second.round_state == RoundState.AWAITING_ANSWERS  # the loop goes on with the new round


def test_the_loop_stops_early_once_the_corrected_share_is_below_the_target(
    project, lead, annotator, samples, routing, django_capture_on_commit_callbacks
):
    config = loop_config(project, lead, rounds=5)
    config.rounds_target_corrected_share = 1.0  # not on the config form yet (generation/configs.py)
    config.save(update_fields=["rounds_target_corrected_share"])
    first = start_loop(config, lead, django_capture_on_commit_callbacks)
    answer_round(first, annotator, django_capture_on_commit_callbacks, confirm_generated_label)
    first.refresh_from_db()
    share = first.round_report["corrected_share"]
    assert first.round_state == RoundState.STOPPED and share < 1.0  # humans confirmed all
    assert first.round_stop_reason == (
        f"Target met: humans corrected {share:.0%} of round 1's reviewed samples, below the target of 100%."
    )
    assert GenerationRun.objects.count() == 1


def test_without_a_target_the_same_answers_go_on_to_the_next_round(
    project, lead, annotator, samples, routing, django_capture_on_commit_callbacks
):
    config = loop_config(project, lead, rounds=5)
    first = start_loop(config, lead, django_capture_on_commit_callbacks)
    answer_round(first, annotator, django_capture_on_commit_callbacks, confirm_generated_label)
    first.refresh_from_db()
    assert first.round_state == RoundState.CONTINUED and GenerationRun.objects.count() == 2


def test_a_cancelled_generation_run_stops_its_loop_with_the_reason(
    project, lead, samples, routing, django_capture_on_commit_callbacks
):
    config = loop_config(project, lead)
    run = run_start(config=config, user=lead, enqueue_task=False)  # created: it enters the loop
    run.refresh_from_db()
    assert run.round_state == RoundState.GENERATING
    with django_capture_on_commit_callbacks(execute=True):
        run.mark_finished(JobStatus.CANCELLED, message="Cancelled by a lead.")
    run.refresh_from_db()
    assert run.round_state == RoundState.STOPPED
    assert run.round_stop_reason == "The round's generation run cancelled."


def test_a_single_round_config_and_a_manual_next_round_stay_outside_any_loop(
    project, lead, samples, routing, django_capture_on_commit_callbacks
):
    config = loop_config(project, lead, rounds=1)
    first = start_loop(config, lead, django_capture_on_commit_callbacks)
    assert first.round_state == ""
    with django_capture_on_commit_callbacks(execute=True):
        manual = run_next_round(run=first, user=lead)
    manual.refresh_from_db()
    assert manual.round_state == "" and LabellingRun.objects.count() == 0


def test_the_worker_heartbeat_advances_a_loop_whose_step_signal_was_missed(
    project, lead, samples, routing, django_capture_on_commit_callbacks, monkeypatch
):
    config = loop_config(project, lead)
    run = run_start(config=config, user=lead, enqueue_task=False)
    from generation.services.runs import run_execute

    with django_capture_on_commit_callbacks(execute=False):  # the finished-run signal's message is lost
        run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.round_state == RoundState.GENERATING
    monkeypatch.setattr(rounds_loop, "_last_sweep", 0.0)
    with django_capture_on_commit_callbacks(execute=True):
        WorkerHeartbeat.objects.update_or_create(hostname="worker@test", defaults={"pid": 1})
    run.refresh_from_db()
    assert run.round_state == RoundState.AWAITING_ANSWERS


def test_a_round_whose_samples_cannot_be_labelled_stops_the_loop_saying_why(
    project, lead, samples, routing, django_capture_on_commit_callbacks, monkeypatch
):
    from annotation.labelling import services as labelling_services

    def no_codebook(**kwargs):
        raise ValueError("The project has no codebook to label with.")

    monkeypatch.setattr(labelling_services, "labelling_run_start", no_codebook)
    first = start_loop(loop_config(project, lead), lead, django_capture_on_commit_callbacks)
    assert first.round_state == RoundState.STOPPED
    assert first.round_stop_reason == (
        "The round's samples could not be labelled: The project has no codebook to label with."
    )
