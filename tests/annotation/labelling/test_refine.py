"""The FreeAL refine loop as a labelling run: the student's noisy LLM labels are re-labelled with demos
picked from its clean set (k-means medoids per class), pass after pass, each pass recorded — with the offline
labeller and through the real openai client against the local test server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.labelling.refine import refine_run_start
from annotation.labelling.services import llm_annotations_import
from annotation.models import LabellingRun, LabellingRunKind
from annotation.review.final_labels import final_label_refresh
from generation.models import LLMEndpoint
from generation.testing.openai_server import OpenAICompatibleTestServer, last_user_message
from synthstudio.models import FinalSource, HumanAnnotation, JobStatus, LabelMethod, LLMAnnotation, Sample
from tests.worker import wait_for_job

POSITIVE = [
    "A delight from start to finish, the cast is superb.",
    "Warm, funny and beautifully acted; I loved it.",
    "The score is moving and the story wonderful.",
    "A joyful, charming film that I would gladly watch again.",
    "Brilliant direction and a superb lead performance.",
    "Heartfelt and delightful, one of the best films this year.",
    "An uplifting triumph with gorgeous photography.",
    "I laughed and cried; a wonderful, generous movie.",
    "Sharp writing, lovely music, a superb delight.",
    "Clever, tender and thoroughly enjoyable.",
    "The actors shine in this delightful comedy.",
    "A masterpiece: moving, funny and wise.",
    "Pure pleasure from the first scene to the last.",
    "Fresh, inventive and full of heart.",
]
NEGATIVE = [
    "Dull, predictable and far too long.",
    "Two hours I will never get back.",
    "A tedious mess with wooden acting.",
    "Boring plot, awful dialogue, a waste of time.",
    "I nearly fell asleep; the jokes all fall flat.",
    "Clumsy, loud and utterly forgettable.",
    "The worst film I have seen in years.",
    "A painful slog with no redeeming qualities.",
    "Lazy writing and a terrible ending.",
    "Irritating characters in a pointless story.",
    "Cheap, ugly and deeply boring.",
    "A dreadful script that insults the audience.",
    "Flat performances and a dull, muddled plot.",
    "Unwatchable: slow, silly and far too long.",
]
FLIPPED = {0, 3, 14, 17}  # rows whose imported LLM label is wrong


@pytest.fixture
def noisy_project(project, lead):
    rows = []
    for i, text in enumerate(POSITIVE + NEGATIVE):
        truth = "positive" if i < len(POSITIVE) else "negative"
        wrong = "negative" if truth == "positive" else "positive"
        rows.append({"text": text, "label": wrong if i in FLIPPED else truth, "confidence": 0.7})
    samples = llm_annotations_import(project=project, rows=rows)
    for sample in samples[5:8] + samples[20:23]:  # a few human-verified items (never re-labelled)
        truth = "positive" if sample.text in POSITIVE else "negative"
        HumanAnnotation.objects.create(sample=sample, annotator=lead, label=truth)
        final_label_refresh(sample=sample)
    return samples


def truth_of(sample: Sample) -> str:
    return "positive" if sample.text in POSITIVE else "negative"


def test_an_offline_refine_run_relabels_the_noisy_items_and_records_each_pass(
    project, lead, noisy_project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = refine_run_start(project=project, user=lead, method=LabelMethod.LOGPROBS, max_passes=3)
    run.refresh_from_db()
    assert run.kind == LabellingRunKind.REFINE and run.method == LabelMethod.OFFLINE
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert "offline" in run.message
    assert run.passes and set(run.passes[0]) == {"pass", "noisy", "relabelled", "changed"}
    assert [row["pass"] for row in run.passes] == list(range(1, len(run.passes) + 1))
    first = run.passes[0]
    assert first["noisy"] > 0 and first["relabelled"] == first["noisy"] and first["changed"] >= 1
    # later passes stop once the noisy set stops shrinking, or after max_passes
    assert len(run.passes) <= 3
    if len(run.passes) > 1:
        assert run.passes[-1]["noisy"] >= run.passes[-2]["noisy"] or len(run.passes) == 3
    flipped = [noisy_project[i] for i in FLIPPED]
    for sample in flipped:
        sample.refresh_from_db()
    assert sum(sample.final_label == truth_of(sample) for sample in flipped) >= 3
    relabelled = Sample.objects.filter(llm_annotations__run_ref=run.run_ref).distinct()
    assert not relabelled.filter(final_source=FinalSource.HUMAN).exists()


def test_a_refine_run_through_the_test_server_shows_the_clean_medoids_as_demos(
    project, lead, noisy_project, openai_server, django_capture_on_commit_callbacks
):
    def responder(body, index):
        text = last_user_message(body)
        return "A" if any(text.endswith(p) for p in POSITIVE) else "B"

    openai_server.responder = responder
    endpoint = LLMEndpoint.objects.create(
        project=project, name="test", base_url=openai_server.base_url, model="test-model", max_retries=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = refine_run_start(
            project=project,
            user=lead,
            method=LabelMethod.PROMPT_VARIANTS,
            endpoint=endpoint,
            max_passes=2,
            demos_per_class=2,
            samples_per_item=2,
        )
    run = LabellingRun.objects.get(pk=run.pk)
    assert run.status == JobStatus.SUCCEEDED, run.error
    first = run.passes[0]
    assert first["relabelled"] == first["noisy"] > 0
    assert len(openai_server.requests) >= 2 * first["noisy"]
    body = openai_server.requests[0]
    demo_turns = [m["content"] for m in body["messages"][1:-1] if m["role"] == "user"]
    assert len(demo_turns) == 4  # two medoids for each of the two labels
    assert all(turn.removeprefix("Text: ") in POSITIVE + NEGATIVE for turn in demo_turns)
    for i in FLIPPED:
        sample = Sample.objects.get(pk=noisy_project[i].pk)
        if sample.llm_annotations.filter(run_ref=run.run_ref).exists():
            assert sample.final_label == truth_of(sample)
    changed = sum(row["changed"] for row in run.passes)
    assert changed >= 1 and str(changed) in run.message


def test_a_lead_starts_a_refine_run_from_the_labelling_page_and_sees_its_passes(
    lead_client, project, noisy_project, django_capture_on_commit_callbacks
):
    page = lead_client.get(reverse("annotation:labelling_overview", args=[project.id]))
    assert b'id="refine-form"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("annotation:refine_run_start", args=[project.id]),
            {
                "refine-endpoint": "",
                "refine-method": LabelMethod.LOGPROBS,
                "refine-samples_per_item": 5,
                "refine-temperature": 0.7,
                "refine-max_passes": 1,
                "refine-demos_per_class": 2,
            },
        )
    run = LabellingRun.objects.get(project=project, kind=LabellingRunKind.REFINE)
    assert response.status_code == 302 and response.url.endswith(f"/labelling/runs/{run.pk}/")
    detail = lead_client.get(response.url).content.decode()
    assert 'id="refine-passes"' in detail and "offline" in detail
    assert f'<td class="num">1</td><td class="num">{run.passes[0]["noisy"]}</td>' in detail


def test_a_refine_run_needs_at_least_one_pass(lead_client, project, noisy_project):
    response = lead_client.post(
        reverse("annotation:refine_run_start", args=[project.id]),
        {"refine-method": LabelMethod.LOGPROBS, "refine-samples_per_item": 5, "refine-temperature": 0.7,
         "refine-max_passes": 0, "refine-demos_per_class": 2},
    )  # fmt: skip
    assert response.status_code == 400
    assert not LabellingRun.objects.filter(project=project).exists()


@pytest.mark.worker
def test_a_refine_run_goes_through_a_real_worker_and_the_test_server(
    celery_worker_process, project, lead, noisy_project
):
    def responder(body, index):
        text = last_user_message(body)
        return "A" if any(text.endswith(p) for p in POSITIVE) else "B"

    with OpenAICompatibleTestServer(responder=responder) as server:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="test", base_url=server.base_url, model="m", max_retries=1
        )
        run = refine_run_start(
            project=project,
            user=lead,
            method=LabelMethod.PROMPT_VARIANTS,
            endpoint=endpoint,
            max_passes=2,
            samples_per_item=2,
        )
        run = wait_for_job(run, celery_worker_process)
        requests = server.request_count
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.passes[0]["relabelled"] == run.passes[0]["noisy"] > 0
    assert requests >= 2 * run.passes[0]["noisy"]
    assert LLMAnnotation.objects.filter(run_ref=run.run_ref).count() == sum(
        row["relabelled"] for row in run.passes
    )
