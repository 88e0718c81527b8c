"""The review queue's services: claiming, overlap, expiry, skip, undo, edit, idempotent answers, gold, adjudication."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, ReviewTask, SampleTextVersion, TaskKind
from annotation.review.answers import (
    adjudication_record,
    review_answer_edit,
    review_answer_submit,
    review_answer_undo,
    review_skip,
)
from annotation.review.lead import (
    adjudication_queue,
    gold_item_mark,
    review_assignment_reassign,
    review_assignment_release,
    review_queue_overview,
)
from annotation.review.progress import review_progress
from annotation.review.queue import (
    ReviewError,
    review_gold_rate_set,
    review_item,
    review_next,
    review_reservations_expire,
    review_tasks_create,
)
from synthstudio.models import (
    FinalSource,
    HumanAnnotation,
    HumanSource,
    LLMAnnotation,
    Membership,
    Role,
    Sample,
)
from synthstudio.services import codebook_create_version
from tests.conftest import make_user


def route(project, samples, *, required_answers=1):
    return review_tasks_create(
        project=project,
        samples_with_reasons=[
            (sample, f"reason {index}", float(len(samples) - index)) for index, sample in enumerate(samples)
        ],
        kind=TaskKind.ROUTED,
        required_answers=required_answers,
        strategy="test",
        batch=1,
    )


def add_annotator(project, name):
    user = make_user(name)
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


@pytest.fixture
def no_gold(project):
    review_gold_rate_set(project=project, gold_rate=0.0)


def test_it_serves_the_highest_priority_item_first(project, samples, annotator, no_gold):
    route(project, samples)
    assignment = review_next(project=project, annotator=annotator)
    assert assignment.task.sample_id == samples[0].pk
    assert assignment.status == AssignmentStatus.RESERVED


def test_it_gives_a_reloading_annotator_their_current_reservation_back(project, samples, annotator, no_gold):
    route(project, samples)
    first = review_next(project=project, annotator=annotator)
    again = review_next(project=project, annotator=annotator)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_it_never_gives_one_item_to_more_annotators_than_its_overlap(
    project, samples, annotator, lead, no_gold
):
    route(project, samples[:1], required_answers=1)
    assert review_next(project=project, annotator=annotator) is not None
    assert review_next(project=project, annotator=lead) is None


def test_it_gives_an_overlap_item_to_distinct_annotators_only(project, samples, annotator, lead, no_gold):
    route(project, samples[:1], required_answers=2)
    first = review_next(project=project, annotator=annotator)
    review_answer_submit(assignment=first, label="positive")
    assert review_next(project=project, annotator=annotator) is None
    second = review_next(project=project, annotator=lead)
    assert second.task_id == first.task_id
    review_answer_submit(assignment=second, label="positive")
    task = ReviewTask.objects.get(pk=first.task_id)
    assert (task.is_open, task.answers_count, task.claimed_count) == (False, 2, 2)


def test_it_stores_one_answer_when_the_same_form_is_sent_twice(project, samples, annotator, no_gold):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    first = review_answer_submit(assignment=assignment, label="positive", submission_id="abc")
    second = review_answer_submit(assignment=assignment, label="negative", submission_id="abc")
    assert first.pk == second.pk
    assert HumanAnnotation.objects.filter(sample=samples[0]).count() == 1
    assert HumanAnnotation.objects.get().label == "positive"


def test_it_refreshes_the_final_label_and_records_agreement_with_the_llm(
    project, samples, annotator, no_gold
):
    LLMAnnotation.objects.create(
        sample=samples[0],
        label="negative",
        distribution={"negative": 0.8, "positive": 0.2},
        confidence=0.8,
        method="offline",
    )
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    answer = review_answer_submit(assignment=assignment, label="positive")
    samples[0].refresh_from_db()
    assert (samples[0].final_label, samples[0].final_source) == ("positive", FinalSource.HUMAN)
    assert answer.agreed_with_llm is False
    assert Sample.objects.human_verified().filter(pk=samples[0].pk).exists()


def test_it_rejects_a_label_outside_the_codebook(project, samples, annotator, no_gold):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    with pytest.raises(ReviewError):
        review_answer_submit(assignment=assignment, label="neutral")
    assert not HumanAnnotation.objects.exists()


def test_it_bounds_the_time_spent_by_what_the_server_saw(project, samples, annotator, no_gold):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=assignment.pk).update(reserved_at=timezone.now() - timedelta(seconds=20))
    answer = review_answer_submit(assignment=assignment, label="positive", seconds_spent=5000)
    assert 20 <= answer.seconds_spent <= 23


def test_it_returns_an_expired_reservation_to_the_queue(project, samples, annotator, lead, no_gold):
    route(project, samples[:1])
    stale = review_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = review_next(project=project, annotator=lead)
    assert taken.task_id == stale.task_id
    stale.refresh_from_db()
    assert stale.status == AssignmentStatus.EXPIRED
    with pytest.raises(ReviewError, match="expired"):
        review_answer_submit(assignment=stale, label="positive")


def test_it_accepts_a_late_answer_while_the_slot_is_still_free(project, samples, annotator, no_gold):
    route(project, samples[:1])
    stale = review_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    review_reservations_expire(project=project)
    review_answer_submit(assignment=stale, label="positive")
    task = ReviewTask.objects.get(pk=stale.task_id)
    assert (task.claimed_count, task.answers_count, task.is_open) == (1, 1, False)


def test_it_returns_a_skipped_item_to_others_but_not_to_the_skipper(
    project, samples, annotator, lead, no_gold
):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    review_skip(assignment=assignment, reason="I cannot judge sarcasm")
    assert review_next(project=project, annotator=annotator) is None
    assert review_next(project=project, annotator=lead).task_id == assignment.task_id


def test_it_skips_without_a_reason(project, samples, annotator, no_gold):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    review_skip(assignment=assignment, reason="  ")
    assignment.refresh_from_db()
    assert (assignment.status, assignment.skip_reason) == (AssignmentStatus.SKIPPED, "")
    assert review_next(project=project, annotator=annotator) is None


def test_it_undoes_the_last_answer_and_serves_that_item_again(project, samples, annotator, no_gold):
    route(project, samples[:2])
    first = review_next(project=project, annotator=annotator)
    review_answer_submit(assignment=first, label="positive", edited_text="A delight, start to finish.")
    second = review_next(project=project, annotator=annotator)
    assert second.pk != first.pk
    undone = review_answer_undo(project=project, annotator=annotator)
    assert undone.pk == first.pk
    assert review_next(project=project, annotator=annotator).pk == first.pk
    assert not HumanAnnotation.objects.exists()
    assert not SampleTextVersion.objects.exists()
    samples[0].refresh_from_db()
    assert samples[0].final_source == FinalSource.NONE


def test_it_edits_an_earlier_answer_and_keeps_text_versions(project, samples, annotator, no_gold):
    route(project, samples[:1])
    assignment = review_next(project=project, annotator=annotator)
    review_answer_submit(assignment=assignment, label="positive", edited_text="A delight.")
    assignment.refresh_from_db()
    review_answer_edit(
        assignment=assignment, label="negative", edited_text="A delight!", comment="changed my mind"
    )
    versions = list(SampleTextVersion.objects.filter(sample=samples[0]).values_list("version", "text"))
    assert versions == [(1, "A delight."), (2, "A delight!")]
    samples[0].refresh_from_db()
    assert samples[0].text == "A delight from start to finish."
    assert samples[0].final_label == "negative"


def test_it_mixes_gold_checks_in_at_the_set_rate_and_tracks_accuracy(project, samples, annotator):
    review_gold_rate_set(project=project, gold_rate=0.5)
    gold_item_mark(project=project, sample=samples[3], label="negative", user=None)
    route(project, samples[:3])
    kinds = []
    for _ in range(4):
        assignment = review_next(project=project, annotator=annotator)
        kinds.append(assignment.task.kind)
        review_answer_submit(assignment=assignment, label="positive")
    assert kinds == [TaskKind.ROUTED, TaskKind.GOLD, TaskKind.ROUTED, TaskKind.ROUTED]
    row = next(
        row for row in review_queue_overview(project=project).annotators if row.user_id == annotator.pk
    )
    assert (row.gold_correct, row.gold_total, row.answered) == (0, 1, 4)


def test_it_reports_agreement_with_others_and_lists_disagreements(project, samples, annotator, lead, no_gold):
    third = add_annotator(project, "tara_third")
    route(project, samples[:2], required_answers=3)
    picks = {
        annotator: ["positive", "negative"],
        lead: ["positive", "negative"],
        third: ["positive", "positive"],
    }
    for user, labels in picks.items():
        for label in labels:
            review_answer_submit(assignment=review_next(project=project, annotator=user), label=label)
    rows = {row.username: row for row in review_queue_overview(project=project).annotators}
    # sample 0: all agree (2 pairs each); sample 1: annotator & lead agree with each other, third with nobody
    assert (rows["tara_third"].agree_pairs, rows["tara_third"].overlap_pairs) == (2, 4)
    assert (rows["arno_annotator"].agree_pairs, rows["arno_annotator"].overlap_pairs) == (3, 4)
    queue = adjudication_queue(project=project)
    assert [item.sample.pk for item in queue] == [samples[1].pk]
    adjudication_record(sample=samples[1], label="positive", note="sarcasm", user=lead)
    samples[1].refresh_from_db()
    assert (samples[1].final_label, samples[1].final_source) == ("positive", FinalSource.ADJUDICATED)
    assert adjudication_queue(project=project) == []
    assert HumanAnnotation.objects.get(source=HumanSource.ADJUDICATION).comment == "sarcasm"


def test_it_releases_and_reassigns_reservations(project, samples, annotator, lead, no_gold):
    route(project, samples[:2])
    held = review_next(project=project, annotator=annotator)
    moved = review_assignment_reassign(assignment=held, annotator=lead)
    assert (moved.annotator_id, moved.task_id) == (lead.pk, held.task_id)
    assert review_assignment_release(assignment=moved) is True
    assert ReviewTask.objects.get(pk=held.task_id).claimed_count == 0


def test_it_refuses_to_reassign_to_an_outsider(project, samples, annotator, outsider, no_gold):
    route(project, samples[:1])
    held = review_next(project=project, annotator=annotator)
    with pytest.raises(ReviewError):
        review_assignment_reassign(assignment=held, annotator=outsider)


def test_it_calls_the_router_after_each_committed_answer(
    project, samples, annotator, no_gold, monkeypatch, django_capture_on_commit_callbacks
):
    calls = []
    monkeypatch.setattr(
        "annotation.review.answers.routing_after_answer", lambda *, project: calls.append(project.pk)
    )
    route(project, samples[:1])
    with django_capture_on_commit_callbacks(execute=True):
        review_answer_submit(assignment=review_next(project=project, annotator=annotator), label="positive")
    assert calls == [project.pk]


def test_it_keeps_the_answer_when_the_router_fails(
    project, samples, annotator, no_gold, monkeypatch, django_capture_on_commit_callbacks
):
    def broken_router(*, project):
        raise RuntimeError("router down")

    monkeypatch.setattr("annotation.review.answers.routing_after_answer", broken_router)
    route(project, samples[:1])
    with django_capture_on_commit_callbacks(execute=True):
        review_answer_submit(assignment=review_next(project=project, annotator=annotator), label="positive")
    assert HumanAnnotation.objects.filter(sample=samples[0]).count() == 1


def test_it_gives_an_expired_item_back_to_the_same_annotator_in_the_same_row(
    project, samples, annotator, no_gold
):
    route(project, samples[:1])
    stale = review_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = review_next(project=project, annotator=annotator)
    assert again.pk == stale.pk and again.status == AssignmentStatus.RESERVED
    assert ReviewTask.objects.get(pk=stale.task_id).claimed_count == 1


def test_it_counts_done_today_items_left_and_a_streak_including_earlier_days(
    project, samples, annotator, no_gold
):
    route(project, samples)
    first = review_next(project=project, annotator=annotator)
    review_answer_submit(assignment=first, label="positive")
    Assignment.objects.filter(pk=first.pk).update(answered_at=timezone.now() - timedelta(days=1))
    review_answer_submit(assignment=review_next(project=project, annotator=annotator), label="positive")
    progress = review_progress(project=project, annotator=annotator)
    assert (progress.done_today, progress.total_answered, progress.streak_days) == (1, 2, 2)
    assert progress.remaining == 2 and not progress.remaining_capped  # two of the four items still wait


def test_the_final_label_counts_every_annotator_and_imported_labels_and_leaves_a_tie_to_the_llm(
    project, samples, annotator, lead, no_gold
):
    sample = samples[0]
    LLMAnnotation.objects.create(
        sample=sample,
        label="negative",
        distribution={"negative": 0.8, "positive": 0.2},
        confidence=0.8,
        method="offline",
    )
    HumanAnnotation.objects.create(sample=sample, source=HumanSource.IMPORTED, label="positive")
    route(project, [sample], required_answers=3)
    first, second = add_annotator(project, "ada_third"), add_annotator(project, "bo_fourth")
    review_answer_submit(assignment=review_next(project=project, annotator=first), label="negative")
    sample.refresh_from_db()
    # imported positive vs one negative answer: a tie, so the LLM's label stands until someone breaks it
    assert (sample.final_label, sample.final_source) == ("negative", FinalSource.LLM)
    review_answer_submit(assignment=review_next(project=project, annotator=second), label="positive")
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source) == ("positive", FinalSource.HUMAN)
    assert sample.final_weight == pytest.approx(2 / 3)
    review_answer_submit(assignment=review_next(project=project, annotator=annotator), label="negative")
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source, sample.final_weight) == (
        "negative",
        FinalSource.LLM,
        0.8,
    )


def test_the_item_comes_with_the_current_llm_label_and_the_newest_codebook_and_only_to_its_annotator(
    project, samples, annotator, lead, no_gold
):
    LLMAnnotation.objects.create(
        sample=samples[0],
        label="negative",
        distribution={"negative": 1.0},
        method="offline",
        is_current=False,
    )
    current = LLMAnnotation.objects.create(
        sample=samples[0], label="positive", distribution={"positive": 1.0}, method="offline"
    )
    route(project, samples[:1])
    reserved = review_next(project=project, annotator=annotator)
    newest = codebook_create_version(
        project=project,
        user=lead,
        task_description="Sentiment, second version.",
        guidelines="",
        labels=[
            {"name": "positive", "description": "Liked."},
            {"name": "negative", "description": "Disliked."},
        ],
    )
    loaded = review_item(project=project, assignment_id=reserved.pk, annotator=annotator)
    assert loaded.task.sample.text == samples[0].text
    assert loaded.llm_suggestion.pk == current.pk
    assert loaded.current_codebook.pk == newest.pk
    assert review_item(project=project, assignment_id=reserved.pk, annotator=lead) is None


def test_claimable_tasks_leave_out_full_ones_and_those_the_annotator_holds_answered_or_skipped(
    project, samples, annotator, lead, no_gold
):
    tasks = route(project, samples)  # four tasks, one slot each, served in this order
    expires = timezone.now() + timedelta(minutes=5)
    Assignment.objects.create(task=tasks[0], project=project, annotator=lead, expires_at=expires)
    ReviewTask.objects.filter(pk=tasks[0].pk).update(claimed_count=1)  # full: the lead holds its one slot
    Assignment.objects.create(
        task=tasks[1],
        project=project,
        annotator=annotator,
        expires_at=expires,
        status=AssignmentStatus.SKIPPED,
    )
    Assignment.objects.create(
        task=tasks[2],
        project=project,
        annotator=annotator,
        expires_at=expires,
        status=AssignmentStatus.EXPIRED,
    )
    claimable = ReviewTask.objects.filter(project=project).claimable_by(annotator, gold=False)
    assert [(task.pk, task.own_status) for task in claimable] == [
        (tasks[2].pk, AssignmentStatus.EXPIRED),
        (tasks[3].pk, ""),
    ]
    assert list(ReviewTask.objects.filter(project=project).claimable_by(annotator, gold=True)) == []


def test_the_database_refuses_an_assignment_pointing_at_a_missing_project(project, samples, annotator):
    task = ReviewTask.objects.create(project=project, sample=samples[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(
            task=task, project_id=project.pk + 1000, annotator=annotator, expires_at=timezone.now()
        )
        connection.check_constraints(table_names=[Assignment._meta.db_table])  # the constraint is deferred


def test_the_database_refuses_an_answer_pointing_at_a_missing_codebook_version(project, samples, annotator):
    missing = project.codebook.pk + 1000
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanAnnotation.objects.create(
            sample=samples[0], annotator=annotator, codebook_id=missing, label="positive"
        )
        connection.check_constraints(table_names=[HumanAnnotation._meta.db_table])
