"""Generation runs end to end against the local test server (and the offline generator): items, samples
with provenance, cache on re-run, garbage, unreachable endpoints, cancel and resume, multi-step kinds."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.core.exceptions import ValidationError

from generation.models import GenerationItem, GenerationRun, ItemStatus, LLMEndpoint
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version, config_preview, configs_latest
from generation.services.planning import request_params
from generation.services.proposals import proposal_decide, proposals_request
from generation.services.rounds import condition_stats, run_next_round
from generation.services.runs import (
    RunExecution,
    run_cancel,
    run_execute,
    run_is_stalled,
    run_resume,
    run_start,
)
from synthstudio.jobs import Recovery, recover_stalled_jobs
from synthstudio.models import FinalSource, JobStatus, Sample

pytestmark = pytest.mark.django_db


def endpoint_for(project, server, **extra) -> LLMEndpoint:
    values = dict(
        project=project,
        name="local",
        base_url=server.base_url,
        model="test-model",
        max_concurrency=4,
        max_retries=1,
        timeout_seconds=2.0,
    )
    values.update(extra)
    return LLMEndpoint.objects.create(**values)


def make_config(project, lead, *, endpoint=None, **values):
    base = {
        "endpoint": endpoint,
        "template": DEFAULT_TEMPLATE,
        "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
        "target_count": 4,
        "sampling_mode": "balanced",
    }
    base.update(values)
    return config_create_version(project=project, user=lead, name="reviews", values=base)


def run_now(config, lead, **kwargs) -> GenerationRun:
    run = run_start(config=config, user=lead, enqueue_task=False, **kwargs)
    return run_execute(run_id=run.pk)


def test_it_rejects_a_template_with_an_unknown_placeholder_naming_it(project, lead):
    with pytest.raises(ValidationError, match="Unknown placeholder {{ mood }}"):
        make_config(project, lead, template="Write about {{ topic }} in a {{ mood }} mood.")


def test_it_versions_configs_by_name(project, lead):
    first = make_config(project, lead)
    second = make_config(project, lead, target_count=9)
    assert (first.version, second.version) == (1, 2)
    assert [c.pk for c in configs_latest(project)] == [second.pk]


def test_a_run_turns_answers_into_samples_with_full_provenance(project, lead, samples, openai_server):
    config = make_config(
        project, lead, endpoint=endpoint_for(project, openai_server), demo_count=1, demo_strategy="random"
    )
    run = run_now(config, lead)
    assert run.status == JobStatus.SUCCEEDED and run.done == 4 and run.samples_created == 4
    sample = Sample.objects.filter(origin="generated").first()
    provenance = sample.provenance
    assert provenance["config_version"] == 1 and provenance["codebook_version"] == 1
    assert (
        set(provenance["conditions"]) == {"topic", "label"}
        and provenance["label"] == provenance["conditions"]["label"]
    )
    assert provenance["model"] == "test-model" and provenance["tokens"]["prompt"] > 0
    assert len(provenance["demos"]) == 1 and provenance["prompt"][0]["role"] == "user"
    assert run.prompt_tokens > 0 and not provenance["offline"]


def test_running_the_same_config_again_is_served_from_the_cache(project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server))
    run_now(config, lead)
    second = run_now(config, lead)
    assert openai_server.request_count == 4
    assert second.cached == 4 and second.done == 4 and second.cost == 0


def test_garbage_answers_are_counted_and_shown_not_crashing_the_run(project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server, max_concurrency=1))
    openai_server.fail_next(1, "garbage")
    openai_server.fail_next(1, "refusal")
    run = run_now(config, lead)
    assert run.status == JobStatus.SUCCEEDED
    assert (run.done, run.failed, run.garbage) == (2, 2, 2)
    kinds = set(
        GenerationItem.objects.filter(run=run, status=ItemStatus.FAILED).values_list(
            "parse_status", flat=True
        )
    )
    assert kinds == {"invalid_json", "refusal"}
    assert GenerationItem.objects.get(run=run, parse_status="invalid_json").raw_output.startswith(
        "<<garbage>>"
    )


def test_a_schema_mismatch_is_recorded_with_the_reason(project, lead, openai_server):
    openai_server.responder = lambda body, index: json.dumps({"text": "x", "label": "meh"})
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=1)
    run = run_now(config, lead)
    item = run.items.get()
    assert item.parse_status == "schema_mismatch" and "'meh'" in item.error


def test_an_unreachable_endpoint_fails_the_run_clearly_keeping_what_finished(project, lead, openai_server):
    config = make_config(
        project, lead, endpoint=endpoint_for(project, openai_server, max_concurrency=1), target_count=6
    )
    run = run_now(config, lead, count=2)
    openai_server.stop()  # nothing listens on the port any more
    failing = run_start(config=config, user=lead, enqueue_task=False)
    failing = run_execute(run_id=failing.pk)
    assert failing.status == JobStatus.FAILED and "could not be reached" in failing.error
    # the two items of the first run were cached: the same calls finished even with the endpoint gone
    assert failing.done == 2 and "2 items finished and are kept" in failing.error
    assert run.status == JobStatus.SUCCEEDED


def test_cancel_then_resume_skips_finished_items_and_resends_nothing(project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=6)
    run = run_start(config=config, user=lead, enqueue_task=False)
    first_two = list(run.items.order_by("index")[:2])
    execution = RunExecution(run)
    execution.claim()
    # finish two items by hand through the real path, then cancel
    from generation.llm.client import LLMRequest, complete_many_sync

    requests = [
        LLMRequest(
            key=i.pk,
            messages=i.messages,
            params=request_params(config, i.index),
            json_schema=execution.context.schema,
        )
        for i in first_two
    ]
    by_key = {i.pk: i for i in first_two}
    complete_many_sync(
        config.endpoint, requests, lambda req, res: execution.on_result(by_key[req.key], 0, req, res)
    )
    execution.flush(force=True)
    run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED and run.done == 2
    assert run_execute(run_id=run.pk).status == JobStatus.CANCELLED  # a stale task does nothing
    run_resume(run=run)
    run = run_execute(run_id=run.pk)
    assert run.status == JobStatus.SUCCEEDED and run.done == 6
    assert openai_server.request_count == 6
    assert Sample.objects.filter(generation_items__run=run).count() == 6


@pytest.mark.parametrize(
    ("kind", "steps", "fields"),
    [
        ("input_then_label", 2, set()),
        ("instruction_then_response", 2, {"instruction", "response"}),
        ("dialogue", 3, {"turns"}),
    ],
)
def test_multi_step_kinds_keep_every_step_and_each_step_sees_the_earlier_ones(
    project, lead, openai_server, kind, steps, fields
):
    config = make_config(
        project,
        lead,
        endpoint=endpoint_for(project, openai_server),
        kind=kind,
        dialogue_turns=3,
        target_count=2,
    )
    run = run_now(config, lead)
    assert run.status == JobStatus.SUCCEEDED and run.done == 2
    item = run.items.first()
    assert len(item.steps) == steps
    first_text = item.steps[0]["outputs"][0]
    first_text = first_text.get("text") or first_text.get("instruction")
    assert first_text in item.steps[1]["messages"][-1]["content"]
    sample = item.samples.get()
    assert set(sample.fields) == fields
    if kind == "dialogue":
        assert [t["role"] for t in sample.fields["turns"]] == ["user", "assistant", "user"]
        assert sample.text.startswith("User: ")
    if kind == "input_then_label":
        assert sample.provenance["label"] in {"positive", "negative"}
    assert openai_server.request_count == 2 * steps


def test_the_offline_generator_runs_with_no_endpoint_and_says_so(project, lead, samples):
    config = make_config(project, lead, target_count=5, random_words=2)
    run = run_now(config, lead)
    assert (
        run.status == JobStatus.SUCCEEDED and run.samples_created == 5 and run.model_name == "offline-markov"
    )
    generated = Sample.objects.filter(origin="generated")
    assert all(s.provenance["offline"] and s.provenance["generator"] == "offline-markov" for s in generated)
    assert all(s.text.strip() for s in generated)


@pytest.mark.parametrize("kind", ["input_then_label", "instruction_then_response", "dialogue"])
def test_the_offline_generator_handles_every_kind(project, lead, samples, kind):
    run = run_now(make_config(project, lead, kind=kind, target_count=2), lead)
    assert run.status == JobStatus.SUCCEEDED and run.samples_created == 2


def test_the_preview_renders_prompts_and_estimates_cost(project, lead, samples, openai_server):
    endpoint = endpoint_for(project, openai_server, price_input_per_1k=1, price_output_per_1k=2)
    config = make_config(
        project,
        lead,
        endpoint=endpoint,
        target_count=10,
        max_tokens=100,
        demo_count=2,
        demo_strategy="random",
    )
    preview = config_preview(config=config, count=3)
    assert len(preview.items) == 3 and preview.total_requests == 10
    assert "- topic:" in preview.items[0].messages[-1]["content"]
    assert preview.completion_tokens == 1000 and preview.cost == pytest.approx(
        preview.prompt_tokens / 1000 + 2.0
    )
    assert openai_server.request_count == 0


def test_an_offline_run_with_votek_demos_gives_every_item_the_same_verified_first_demos(
    project, lead, samples
):
    verified = samples[3]
    verified.final_source, verified.final_label = FinalSource.HUMAN, "negative"
    verified.save(update_fields=["final_source", "final_label"])
    config = make_config(project, lead, target_count=3, demo_count=2, demo_strategy="votek")
    preview = config_preview(config=config, count=3)
    demos = [[demo["sample_id"] for demo in item.demos] for item in preview.items]
    assert demos[0][0] == verified.id and len(set(demos[0])) == 2 and set(demos[0]) <= {s.id for s in samples}
    assert all(picked == demos[0] for picked in demos)
    run = run_now(config, lead)
    assert (
        run.status == JobStatus.SUCCEEDED and run.samples_created == 3 and run.model_name == "offline-markov"
    )
    generated = Sample.objects.filter(origin="generated")
    assert all(s.provenance["offline"] and s.provenance["demos"] == demos[0] for s in generated)


def test_the_next_round_moves_weight_toward_the_label_humans_corrected_most(
    project, lead, samples, annotator
):
    from synthstudio.models import HumanAnnotation

    config = make_config(project, lead, dimensions=[], target_count=8)
    first = run_now(config, lead)
    generated = list(Sample.objects.filter(generation_items__run=first))
    for sample in generated:  # humans correct every 'negative' sample and confirm every 'positive' one
        wrong = sample.provenance["label"] == "negative"
        HumanAnnotation.objects.create(
            sample=sample, annotator=annotator, label="positive", agreed_with_llm=not wrong
        )
    stats = condition_stats(config)
    assert stats["label"]["negative"] == {"generated": 4, "reviewed": 4, "corrected": 4}
    assert stats["label"]["positive"]["corrected"] == 0
    second = run_next_round(run=first, user=lead, count=12)
    assert second.round_number == 2 and second.previous_round == first
    assert (
        second.condition_weights["label"]["negative"]
        > 1.5
        > 0.5
        > second.condition_weights["label"]["positive"]
    )
    planned = Counter(item.conditions["label"] for item in second.items.all())
    assert planned["negative"] > planned["positive"]


def test_a_final_label_that_differs_from_the_generation_label_counts_as_a_correction(project, lead, samples):
    config = make_config(project, lead, dimensions=[], target_count=2)
    run = run_now(config, lead)
    sample = Sample.objects.filter(generation_items__run=run, provenance__label="positive").first()
    Sample.objects.filter(pk=sample.pk).update(final_label="negative", final_source="human")
    assert condition_stats(config)["label"]["positive"] == {"generated": 1, "reviewed": 1, "corrected": 1}


def test_a_run_whose_heartbeat_stopped_is_resumed_and_shown_as_stalled(
    project, lead, samples, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    config = make_config(project, lead, target_count=3)
    run = run_start(config=config, user=lead, enqueue_task=False)
    GenerationRun.objects.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, lease="dead-worker", heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    run.refresh_from_db()
    assert run_is_stalled(run)
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_stalled_jobs() == [Recovery("generation.generationrun", run.pk, requeued=True)]
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == 3 and not run_is_stalled(run)


def test_the_llm_proposes_new_condition_values_that_wait_for_review(project, lead, openai_server):
    openai_server.responder = lambda body, index: json.dumps(
        {"values": ["Music", "plot", "pacing", "pacing"]}
    )
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server))
    proposals = proposals_request(config=config, dimension="topic")
    assert [p.value for p in proposals] == ["Music", "pacing"]  # known and repeated values dropped
    assert "Existing values: plot, acting" in openai_server.requests[0]["messages"][0]["content"]
    assert config.dimensions[0]["values"] == ["plot", "acting"]  # nothing used before a lead accepts
    new_version = proposal_decide(proposal=proposals[1], accept=True, user=lead)
    assert new_version.dimensions[0]["values"] == ["plot", "acting", "pacing"]
    with pytest.raises(ValidationError, match="no dimension 'mood'"):
        proposals_request(config=config, dimension="mood")
