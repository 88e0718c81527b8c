"""Labelling runs end to end: the real client over real HTTP against the local test server (logprobs,
self-consistency, prompt variants, verbalised), bad model output, a broken endpoint, and the offline labeller."""

from __future__ import annotations

import json
import math

import pytest

from annotation.labelling.services import labelling_run_execute, labelling_run_start
from annotation.models import LabellingRun
from generation.models import LLMEndpoint
from generation.testing.openai_server import Reply, last_user_message
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation, Sample
from synthstudio.services import codebook_create_version

POSITIVE_WORDS = ("delight", "superb")


def is_positive(body: dict) -> bool:
    return any(word in last_user_message(body) for word in POSITIVE_WORDS)


@pytest.fixture
def endpoint(project, openai_server):
    return LLMEndpoint.objects.create(
        project=project, name="test", base_url=openai_server.base_url, model="test-model", max_retries=1
    )


def start(project, lead, endpoint, method, **options) -> LabellingRun:
    run = labelling_run_start(project=project, user=lead, method=method, endpoint=endpoint, **options)
    run.refresh_from_db()
    return run


def current(sample: Sample) -> LLMAnnotation:
    return sample.llm_annotations.get(is_current=True)


def test_a_logprobs_run_turns_top_logprobs_into_distributions(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    def responder(body, index):
        if is_positive(body):
            return Reply("A", token_logprobs=[{"A": math.log(0.6), " A": math.log(0.2), "B": math.log(0.1)}])
        return Reply("B", token_logprobs=[{"B": math.log(0.9), "b": math.log(0.05)}])

    openai_server.responder = responder
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, lead, endpoint, LabelMethod.LOGPROBS)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == 4 and run.invalid == 0
    first = current(samples[0])
    assert first.label == "positive" and first.method == LabelMethod.LOGPROBS and first.valid
    assert first.distribution["positive"] == pytest.approx(0.8 / 0.9)
    assert first.run_ref == f"labelling:{run.pk}"
    body = openai_server.requests[0]
    assert body["logprobs"] is True and body["max_tokens"] == 1 and body["top_logprobs"] == 20
    assert "The reviewer liked the film." in body["messages"][0]["content"]  # the codebook humans read
    samples[1].refresh_from_db()
    assert samples[1].final_label == "negative" and samples[1].final_source == "llm"


def test_self_consistency_counts_n_answers(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: "A" if index < 3 else "B"
    with django_capture_on_commit_callbacks(execute=True):
        start(project, lead, endpoint, LabelMethod.SELF_CONSISTENCY, samples_per_item=5, temperature=0.8)
    annotation = current(samples[2])
    assert annotation.distribution == {"positive": 0.6, "negative": 0.4}
    assert annotation.confidence == pytest.approx(0.6)
    assert openai_server.requests[0]["n"] == 5 and openai_server.requests[0]["temperature"] == 0.8


def test_prompt_variants_send_one_paraphrased_prompt_per_call(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: (
        "B" if "expert annotator following" in body["messages"][0]["content"] else "A"
    )
    with django_capture_on_commit_callbacks(execute=True):
        start(project, lead, endpoint, LabelMethod.PROMPT_VARIANTS, samples_per_item=4)
    assert openai_server.request_count == 4 * len(samples)
    assert len({r["messages"][0]["content"] for r in openai_server.requests}) == 4
    assert current(samples[0]).distribution == {"positive": 0.75, "negative": 0.25}


def test_verbalised_confidence_keeps_the_rationale(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: json.dumps(
        {"label": "B", "confidence": 0.7, "rationale": "sounds bored"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        start(project, lead, endpoint, LabelMethod.VERBALISED)
    annotation = current(samples[0])
    assert annotation.label == "negative" and annotation.confidence == pytest.approx(0.7)
    assert annotation.rationale == "sounds bored"


def test_an_answer_naming_no_label_is_recorded_as_invalid_and_the_run_succeeds(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: "I'd rather not say" if is_positive(body) else "B"
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, lead, endpoint, LabelMethod.SELF_CONSISTENCY, samples_per_item=2)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.invalid == 2 and run.done == 4
    bad = current(samples[0])
    assert not bad.valid and bad.label == "" and bad.distribution == {}
    assert "I'd rather not say" in bad.raw_output
    assert "2 answers named no valid label" in run.message


def test_garbage_and_refusals_from_the_server_never_crash_a_run(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: json.dumps({"label": "A", "confidence": 0.9})
    openai_server.fail_next(1, "garbage")
    openai_server.fail_next(1, "refusal")
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, lead, endpoint, LabelMethod.VERBALISED)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == 4
    assert LLMAnnotation.objects.filter(run_ref=run.run_ref, valid=False).count() == 2


def test_an_unreachable_endpoint_fails_the_run_with_the_error(
    project, lead, samples, openai_server, django_capture_on_commit_callbacks
):
    broken = LLMEndpoint.objects.create(
        project=project, name="down", base_url=openai_server.base_url, model="m", max_retries=0
    )
    openai_server.fail_next(100, "500")
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, lead, broken, LabelMethod.LOGPROBS)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "http_error" in run.error
    assert run.failed == 4 and not LLMAnnotation.objects.filter(run_ref=run.run_ref).exists()


def test_a_rerun_skips_what_it_labelled_and_relabelling_keeps_one_current(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: "A"
    with django_capture_on_commit_callbacks(execute=True):
        run = start(project, lead, endpoint, LabelMethod.PROMPT_VARIANTS, samples_per_item=2)
    sent = openai_server.request_count
    LabellingRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING)  # as if the worker died
    run.refresh_from_db()
    labelling_run_execute(run=run)
    assert openai_server.request_count == sent
    assert LLMAnnotation.objects.filter(run_ref=run.run_ref).count() == 4
    with django_capture_on_commit_callbacks(execute=True):
        start(project, lead, endpoint, LabelMethod.PROMPT_VARIANTS, samples_per_item=2, only_unlabelled=False)
    assert samples[0].llm_annotations.count() == 2
    assert samples[0].llm_annotations.filter(is_current=True).count() == 1
    assert openai_server.request_count == sent  # same prompts: answered from the call cache


def test_demos_are_human_verified_items_most_similar_to_the_text(
    project, lead, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    from annotation.review.final_labels import final_label_refresh
    from synthstudio.models import HumanAnnotation

    HumanAnnotation.objects.create(sample=samples[0], annotator=lead, label="positive")
    final_label_refresh(sample=samples[0])
    openai_server.responder = lambda body, index: "A"
    with django_capture_on_commit_callbacks(execute=True):
        start(
            project,
            lead,
            endpoint,
            LabelMethod.PROMPT_VARIANTS,
            samples_per_item=2,
            demo_count=1,
            only_unlabelled=False,
        )
    body = next(r for r in openai_server.requests if "superb" in last_user_message(r))
    assert body["messages"][1] == {"role": "user", "content": "Text: A delight from start to finish."}
    assert body["messages"][2] == {"role": "assistant", "content": "A"}


def test_without_an_endpoint_the_offline_labeller_gives_real_distributions(
    project, lead, django_capture_on_commit_callbacks
):
    # a topic codebook: sentence embeddings separate topics well (zero-shot sentiment is beyond MiniLM)
    codebook_create_version(
        project=project,
        user=lead,
        task_description="Topic of a news snippet.",
        guidelines="",
        labels=[
            {
                "name": "sports",
                "description": "Games, athletes, matches and tournaments.",
                "examples": ["The striker scored twice in the final."],
            },
            {
                "name": "cooking",
                "description": "Recipes, ingredients and kitchens.",
                "examples": ["Simmer the onions in butter until golden."],
            },
        ],
    )
    football = Sample.objects.create(project=project, text="The goalkeeper saved a penalty in extra time.")
    baking = Sample.objects.create(
        project=project, text="Knead the dough and bake the bread for forty minutes."
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = labelling_run_start(project=project, user=lead, method=LabelMethod.LOGPROBS, endpoint=None)
    run.refresh_from_db()
    assert run.method == LabelMethod.OFFLINE and run.is_offline and run.status == JobStatus.SUCCEEDED
    annotation = current(football)
    assert annotation.method == LabelMethod.OFFLINE and "offline" in annotation.rationale
    assert sum(annotation.distribution.values()) == pytest.approx(1.0)
    assert annotation.label == "sports" and 0.5 < annotation.confidence < 1.0
    assert current(baking).label == "cooking"
