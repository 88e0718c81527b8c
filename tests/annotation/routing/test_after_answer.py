"""The router's answer hook stays off the annotator's request path: it costs at most one small query while
nothing is due, queues the next batch for a worker once a routed batch is fully answered, and a batch queued
twice is routed once."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation import tasks
from annotation.models import ReviewTask, RoutingPolicy
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_next
from annotation.routing import services
from tests.annotation.routing.test_services import label_samples, policy

HTMX = {"HTTP_HX_REQUEST": "true"}


def routed_batch_of_two(project) -> list[ReviewTask]:
    """Four labelled samples, a budget of four in batches of two, and the first batch routed."""
    label_samples(project, [0.6, 0.7, 0.8, 0.9])
    policy(
        project,
        strategy="least_confidence",
        budget_kind="count",
        budget_count=4,
        batch_size=2,
        annotators_per_item=1,
    )
    return services.routing_route_next_batch(project=project)


def answer_one(project, annotator) -> None:
    assignment = review_next(project=project, annotator=annotator)
    review_answer_submit(assignment=assignment, label="negative")


def lead_page_client(lead) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def routing_form(**overrides) -> dict:
    data = {
        "budget_kind": "count",
        "budget_count": 4,
        "budget_share": 0.2,
        "strategy": "least_confidence",
        "batch_size": 2,
        "annotators_per_item": 1,
        "cold_start_size": 0,
        "cold_start_strategy": "random",
        "save": "1",
    }
    data.update(overrides)
    return data


def test_the_last_answer_of_a_batch_queues_the_next_batch_instead_of_routing_it(
    project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    assert services.routing_after_answer(project=project) is False  # one routed item is still open
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks() as queued:  # captured, not run: the task is only queued
        assert services.routing_after_answer(project=project) is True
    assert len(queued) == 1
    assert ReviewTask.objects.filter(project=project).count() == 2  # nothing was planned in the hook
    assert RoutingPolicy.objects.get(project=project).next_batch_queued_at is not None


def test_the_routed_batch_appears_once_the_queued_task_has_run(
    project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the task runs here
        services.routing_after_answer(project=project)
    second = ReviewTask.objects.filter(project=project, batch=2)
    assert second.count() == 2 and all(task.is_open for task in second)
    assert RoutingPolicy.objects.get(project=project).next_batch_queued_at is None


def test_a_batch_queued_twice_is_routed_once(project, annotator, django_capture_on_commit_callbacks):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)
    tasks.routing_next_batch_task(project.pk)
    tasks.routing_next_batch_task(project.pk)  # a duplicate (or redelivered) message
    assert ReviewTask.objects.filter(project=project).count() == 4
    assert sorted(set(ReviewTask.objects.values_list("batch", flat=True))) == [1, 2]


def test_a_second_answer_does_not_queue_the_batch_again_while_it_waits_for_a_worker(
    project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks() as queued:
        assert services.routing_after_answer(project=project) is True
        assert services.routing_after_answer(project=project) is False
    assert len(queued) == 1


def test_a_queued_batch_is_not_routed_once_the_lead_has_deactivated_the_policy(
    project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks() as queued:
        assert services.routing_after_answer(project=project) is True
    policy(project, is_active=False)
    queued[0]()  # the worker runs the task after the lead switched automatic routing off
    assert ReviewTask.objects.filter(project=project).count() == 2
    assert RoutingPolicy.objects.get(project=project).next_batch_queued_at is None


def test_nothing_is_queued_once_the_budget_is_spent(project, annotator, django_capture_on_commit_callbacks):
    label_samples(project, [0.6, 0.7, 0.8])
    policy(project, strategy="least_confidence", budget_kind="count", budget_count=1, batch_size=1)
    services.routing_route_next_batch(project=project)
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks() as queued:
        assert services.routing_after_answer(project=project) is False
    assert queued == []
    assert RoutingPolicy.objects.get(project=project).next_batch_queued_at is None


@pytest.mark.django_db(transaction=True)
def test_two_workers_routing_the_same_completed_batch_at_once_route_one_batch(
    project, annotator, monkeypatch
):
    label_samples(project, [0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    policy(
        project,
        strategy="least_confidence",
        budget_kind="count",
        budget_count=6,
        batch_size=2,
        annotators_per_item=1,
    )
    services.routing_route_next_batch(
        project=project
    )  # budget left for two more batches: only one may follow
    with (
        monkeypatch.context() as setup
    ):  # answers commit here: keep their hook from routing the batch already
        setup.setattr("annotation.review.answers.routing_after_answer", lambda *, project: False)
        answer_one(project, annotator)
        answer_one(project, annotator)
    assert ReviewTask.objects.filter(project=project).count() == 2
    first_is_planning, second_has_started = threading.Event(), threading.Event()
    plan = services._plan_next_batch

    def slow_first_plan(**kwargs):
        """The first worker plans while the second one arrives (and waits for the policy row's lock)."""
        if not first_is_planning.is_set():
            first_is_planning.set()
            second_has_started.wait(timeout=30)
            time.sleep(0.3)  # widen the race: let the second worker reach the lock
        return plan(**kwargs)

    monkeypatch.setattr(services, "_plan_next_batch", slow_first_plan)
    errors: list[Exception] = []

    def run_task(wait_for_the_first: bool) -> None:
        try:
            if wait_for_the_first:
                first_is_planning.wait(timeout=30)
                second_has_started.set()
            tasks.routing_next_batch_task(project.pk)
        except Exception as error:  # reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run_task, args=(second,)) for second in (False, True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert second_has_started.is_set()
    assert ReviewTask.objects.filter(project=project).count() == 4
    assert sorted(set(ReviewTask.objects.values_list("batch", flat=True))) == [1, 2]


def test_the_hook_costs_at_most_one_query_while_routed_items_are_open(
    project, annotator, django_assert_max_num_queries
):
    routed_batch_of_two(project)
    services.routing_after_answer(project=project)  # caches that the policy is active
    with django_assert_max_num_queries(1):
        assert services.routing_after_answer(project=project) is False


def test_the_hook_costs_no_query_for_a_project_without_an_active_policy(project, django_assert_num_queries):
    services.routing_after_answer(project=project)  # no policy at all: cached as inactive
    with django_assert_num_queries(0):
        assert services.routing_after_answer(project=project) is False


def test_the_answering_request_spends_at_most_one_query_on_the_router_until_the_batch_is_done(
    annotator_client, annotator, project, monkeypatch, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    queries_per_hook: list[int] = []

    def counted_hook(*, project):
        with CaptureQueriesContext(connection) as queries:
            result = services.routing_after_answer(project=project)
        queries_per_hook.append(len(queries))
        return result

    monkeypatch.setattr("annotation.review.answers.routing_after_answer", counted_hook)
    for index in range(2):
        assignment = review_next(project=project, annotator=annotator)
        with django_capture_on_commit_callbacks(execute=True):
            response = annotator_client.post(
                reverse("annotation:review_answer", args=[project.id, assignment.pk]),
                {"label": "negative", "submission_id": f"answer-{index}"},
                **HTMX,
            )
        assert response.status_code == 200
    first, last = queries_per_hook
    assert first <= 2  # the first answer may fill the "is the policy active?" cache
    assert last <= 3  # open items? budget left? mark the batch queued: no planning in the request
    assert ReviewTask.objects.filter(project=project, batch=2).count() == 2  # the eager task routed it after


def test_activating_a_policy_on_the_routing_page_takes_effect_on_the_next_answer(
    lead, project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    policy(project, is_active=False)
    answer_one(project, annotator)
    answer_one(project, annotator)
    assert services.routing_after_answer(project=project) is False  # "inactive" is now cached
    response = lead_page_client(lead).post(
        reverse("annotation:routing_policy", args=[project.id]), routing_form(is_active="on")
    )
    assert response.status_code == 302
    with django_capture_on_commit_callbacks() as queued:
        assert services.routing_after_answer(project=project) is True
    assert len(queued) == 1


def test_deactivating_a_policy_on_the_routing_page_stops_routing_on_the_next_answer(
    lead, project, annotator, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    assert services.routing_after_answer(project=project) is False  # "active" is now cached; one item open
    response = lead_page_client(lead).post(
        reverse("annotation:routing_policy", args=[project.id]), routing_form()
    )
    assert response.status_code == 302 and not RoutingPolicy.objects.get(project=project).is_active
    answer_one(project, annotator)
    with django_capture_on_commit_callbacks() as queued, CaptureQueriesContext(connection) as queries:
        assert services.routing_after_answer(project=project) is False
    assert queued == []
    assert len(queries) == 1  # it read the policy again rather than trusting the cached "active"


def test_the_routing_page_says_a_batch_is_queued_and_that_no_worker_is_running(
    lead, project, annotator, settings, django_capture_on_commit_callbacks
):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)
    url = reverse("annotation:routing_policy", args=[project.id])
    client = lead_page_client(lead)
    assert 'id="routing-queued"' not in client.get(url).content.decode()
    with django_capture_on_commit_callbacks():  # queued, and no worker picks it up
        services.routing_after_answer(project=project)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    content = client.get(url).content.decode()
    assert 'id="routing-queued"' in content and "queued for routing" in content
    assert '<span class="warn">Waiting: no worker is running.</span>' in content


@pytest.mark.worker
def test_a_real_worker_routes_the_next_batch_after_the_last_answer(celery_worker_process, project, annotator):
    routed_batch_of_two(project)
    answer_one(project, annotator)
    answer_one(project, annotator)  # committed: its on-commit hook queues the next batch on the real broker
    deadline = time.monotonic() + 180
    while ReviewTask.objects.filter(project=project).count() < 4 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ReviewTask.objects.filter(project=project, batch=2).count() == 2, celery_worker_process.log_tail()
    assert RoutingPolicy.objects.get(project=project).next_batch_queued_at is None
