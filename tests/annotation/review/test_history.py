"""An annotator's own history (issue 14 item 10): filters by label, flagged, answered or skipped and date range,
server-side pagination, and only one's own rows."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus
from annotation.review import history as review_history
from annotation.review.answers import review_answer_submit, review_skip
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create
from synthstudio.models import Sample


@pytest.fixture
def worked(project, samples, annotator, lead):
    """The annotator answered three items (one flagged, one ten days ago) and skipped one; the lead answered
    one too."""
    review_gold_rate_set(project=project, gold_rate=0.0)
    extra = Sample.objects.create(project=project, text="A fifth review, for the lead.")
    review_tasks_create(
        project=project,
        samples_with_reasons=[(s, "test", 10.0 - i) for i, s in enumerate([*samples, extra])],
        required_answers=2,
    )
    done = {}
    for name, label, flag in [
        ("old", "positive", ""),
        ("flagged", "negative", "harmful"),
        ("new", "positive", ""),
    ]:
        assignment = review_next(project=project, annotator=annotator)
        review_answer_submit(assignment=assignment, label=label, flag=flag)
        done[name] = assignment
    skipped = review_next(project=project, annotator=annotator)
    review_skip(assignment=skipped, reason="cannot judge this one")
    done["skipped"] = skipped
    Assignment.objects.filter(pk=done["old"].pk).update(answered_at=timezone.now() - timedelta(days=10))
    review_answer_submit(assignment=review_next(project=project, annotator=lead), label="negative")
    return done


def shown(client, project, **filters) -> list[int]:
    response = client.get(reverse("annotation:review_history", args=[project.id]), filters)
    assert response.status_code == 200
    return [row.pk for row in response.context["page"]]


def test_by_default_it_lists_ones_own_answers_newest_first(annotator_client, project, worked):
    assert shown(annotator_client, project) == [worked["new"].pk, worked["flagged"].pk, worked["old"].pk]


def test_a_lead_sees_only_their_own_answers_too(lead_client, project, worked, lead):
    rows = shown(lead_client, project)

    assert len(rows) == 1 and Assignment.objects.get(pk=rows[0]).annotator == lead


@pytest.mark.parametrize(
    "filters,expected",
    [
        ({"label": "positive"}, ["new", "old"]),
        ({"label": "negative"}, ["flagged"]),
        ({"flagged": "yes"}, ["flagged"]),
        ({"flagged": "no"}, ["new", "old"]),
        ({"status": "skipped"}, ["skipped"]),
        ({"status": "all"}, ["skipped", "new", "flagged", "old"]),
        ({"status": "all", "flagged": "no"}, ["skipped", "new", "old"]),
    ],
)
def test_each_filter_keeps_the_matching_rows(annotator_client, project, worked, filters, expected):
    assert shown(annotator_client, project, **filters) == [worked[name].pk for name in expected]


def test_the_date_range_filters_by_the_day_of_the_answer(annotator_client, project, worked):
    today = timezone.localdate()
    week_ago = (today - timedelta(days=7)).isoformat()

    assert shown(annotator_client, project, since=week_ago) == [worked["new"].pk, worked["flagged"].pk]
    assert shown(annotator_client, project, until=week_ago) == [worked["old"].pk]
    assert shown(annotator_client, project, since=today.isoformat(), until=today.isoformat()) == [
        worked["new"].pk,
        worked["flagged"].pk,
    ]


def test_an_empty_date_range_says_so_and_filters_no_dates(annotator_client, project, worked):
    response = annotator_client.get(
        reverse("annotation:review_history", args=[project.id]),
        {"since": "2026-05-02", "until": "2026-05-01"},
    )

    assert "“From” is after “To”" in html.unescape(response.content.decode())
    assert len(response.context["page"].object_list) == 3


def test_skipped_rows_show_their_reason_and_no_edit_link(annotator_client, project, worked):
    body = annotator_client.get(
        reverse("annotation:review_history", args=[project.id]), {"status": "skipped"}
    ).content.decode()

    assert "cannot judge this one" in body
    assert reverse("annotation:review_answer_edit", args=[project.id, worked["skipped"].pk]) not in body


def test_it_paginates_on_the_server_and_keeps_the_filter_in_the_pager(
    annotator_client, annotator, project, worked, monkeypatch
):
    from annotation.review import views

    monkeypatch.setattr(views, "HISTORY_PER_PAGE", 2)
    url = reverse("annotation:review_history", args=[project.id])

    first = annotator_client.get(url, {"status": "all"})
    second = annotator_client.get(url, {"status": "all", "page": 2})

    assert [row.pk for row in first.context["page"]] == [worked["skipped"].pk, worked["new"].pk]
    assert [row.pk for row in second.context["page"]] == [worked["flagged"].pk, worked["old"].pk]
    assert "?status=all&amp;page=2" in first.content.decode()


def test_the_htmx_filter_answers_with_the_table_only(annotator_client, project, worked):
    response = annotator_client.get(
        reverse("annotation:review_history", args=[project.id]), {"flagged": "yes"}, HTTP_HX_REQUEST="true"
    )

    body = response.content.decode()
    assert "<html" not in body and 'id="history-table"' in body


def test_nothing_matching_says_so(annotator_client, project, worked):
    body = annotator_client.get(
        reverse("annotation:review_history", args=[project.id]), {"label": "positive", "flagged": "yes"}
    ).content.decode()

    assert "None of your answers match these filters." in body


def test_the_query_reads_one_annotators_rows_only(project, worked, annotator, lead):
    rows = review_history.review_history(
        project=project, annotator=annotator, history_filter=review_history.HistoryFilter(status="all")
    )

    assert {row.annotator_id for row in rows} == {annotator.pk}
    assert {row.status for row in rows} == {AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED}
