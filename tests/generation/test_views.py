"""Generation pages as lead, annotator (403) and outsider (404); forms, htmx fragments and the key's secrecy."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import ConditionValueProposal, GenerationConfig, GenerationRun, LLMEndpoint
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_execute, run_start
from synthstudio.models import JobStatus, Sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def config(project, lead):
    return config_create_version(
        project=project,
        user=lead,
        name="reviews",
        values={
            "template": DEFAULT_TEMPLATE,
            "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
            "target_count": 3,
        },
    )


@pytest.fixture
def finished_run(config, lead, samples):
    run = run_start(config=config, user=lead, enqueue_task=False)
    return run_execute(run_id=run.pk)


@pytest.fixture
def endpoint(project, openai_server):
    return LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=openai_server.base_url,
        model="test-model",
        stored_api_key="sk-very-secret-key",
        max_retries=0,
    )


def all_urls(project, config, run, endpoint, proposal):
    p = project.id
    return [
        ("get", reverse("generation:home", args=[p])),
        ("get", reverse("generation:endpoint_list", args=[p])),
        ("get", reverse("generation:endpoint_edit", args=[p, endpoint.id])),
        ("post", reverse("generation:endpoint_test", args=[p, endpoint.id])),
        ("get", reverse("generation:config_new", args=[p])),
        ("get", reverse("generation:config_detail", args=[p, config.id])),
        ("get", reverse("generation:config_edit", args=[p, config.id])),
        ("get", reverse("generation:config_preview", args=[p, config.id])),
        ("post", reverse("generation:run_start", args=[p, config.id])),
        ("post", reverse("generation:proposals_request", args=[p, config.id])),
        ("post", reverse("generation:proposal_decide", args=[p, proposal.id])),
        ("get", reverse("generation:run_detail", args=[p, run.id])),
        ("post", reverse("generation:run_cancel", args=[p, run.id])),
        ("post", reverse("generation:run_resume", args=[p, run.id])),
        ("post", reverse("generation:run_next_round", args=[p, run.id])),
        ("get", reverse("generation:outputs", args=[p])),
        ("get", reverse("generation:output_detail", args=[p, run.items.first().id])),
    ]


@pytest.fixture
def urls(project, config, finished_run, endpoint):
    proposal = ConditionValueProposal.objects.create(config=config, dimension="topic", value="music")
    return all_urls(project, config, finished_run, endpoint, proposal)


def test_annotators_are_refused_every_generation_page(annotator_client, urls):
    for method, url in urls:
        assert getattr(annotator_client, method)(url).status_code == 403, url


def test_outsiders_do_not_learn_the_project_exists(outsider_client, urls):
    for method, url in urls:
        assert getattr(outsider_client, method)(url).status_code == 404, url


def test_leads_can_open_every_page(lead_client, urls):
    for method, url in urls:
        response = getattr(lead_client, method)(url)
        assert response.status_code in (200, 302), (url, response.status_code)


def test_the_nav_shows_generation_links_to_leads_only(client, lead, annotator, project):
    url, link = reverse("project_detail", args=[project.id]), reverse("generation:home", args=[project.id])
    client.force_login(lead)
    assert link in client.get(url).content.decode()
    client.force_login(annotator)
    assert link not in client.get(url).content.decode()


def test_a_lead_creates_a_config_in_the_form(lead_client, project):
    response = lead_client.post(
        reverse("generation:config_new", args=[project.id]),
        {
            "name": "films",
            "kind": "single",
            "dialogue_turns": 4,
            "template": DEFAULT_TEMPLATE,
            "dimensions": "topic: plot, acting\nlength: short, long",
            "condition_on_label": "on",
            "label_balance": "positive: 2",
            "sampling_mode": "balanced",
            "random_words": 1,
            "demo_count": 2,
            "demo_strategy": "random",
            "temperature": 0.9,
            "top_p": 1,
            "max_tokens": 200,
            "n": 1,
            "seed": 3,
            "target_count": 12,
            "rounds": 2,
        },
    )
    config = GenerationConfig.objects.get(name="films")
    assert response.status_code == 302
    assert config.dimensions[1] == {"name": "length", "values": ["short", "long"]}
    assert config.label_balance == {"positive": 2.0} and config.demo_count == 2


def test_the_config_form_offers_votek_demos_and_the_detail_names_them(lead_client, project):
    body = lead_client.get(reverse("generation:config_new", args=[project.id])).content.decode()
    assert '<option value="votek">Representative and diverse (vote-k)</option>' in body
    response = lead_client.post(
        reverse("generation:config_new", args=[project.id]),
        {
            "name": "films",
            "kind": "single",
            "dialogue_turns": 4,
            "template": DEFAULT_TEMPLATE,
            "dimensions": "topic: plot",
            "sampling_mode": "all",
            "random_words": 0,
            "demo_count": 3,
            "demo_strategy": "votek",
            "temperature": 1,
            "top_p": 1,
            "max_tokens": 10,
            "n": 1,
            "seed": 0,
            "target_count": 1,
            "rounds": 1,
        },
    )
    config = GenerationConfig.objects.get(name="films")
    assert response.status_code == 302 and config.demo_strategy == "votek"
    detail = lead_client.get(
        reverse("generation:config_detail", args=[project.id, config.id])
    ).content.decode()
    assert "3 × Representative and diverse (vote-k)" in detail


def test_the_form_rejects_an_unknown_placeholder_by_name(lead_client, project):
    response = lead_client.post(
        reverse("generation:config_new", args=[project.id]),
        {
            "name": "films",
            "kind": "single",
            "dialogue_turns": 4,
            "template": "Write {{ mood }} text about {{ topic }}",
            "dimensions": "topic: plot",
            "sampling_mode": "all",
            "random_words": 0,
            "demo_count": 0,
            "demo_strategy": "none",
            "temperature": 1,
            "top_p": 1,
            "max_tokens": 10,
            "n": 1,
            "seed": 0,
            "target_count": 1,
            "rounds": 1,
        },
    )
    assert response.status_code == 200
    assert "Unknown placeholder {{ mood }}" in response.content.decode()
    assert not GenerationConfig.objects.filter(name="films").exists()


def test_the_preview_shows_rendered_prompts_and_the_estimate(lead_client, project, config):
    response = lead_client.get(reverse("generation:config_preview", args=[project.id, config.id]))
    body = response.content.decode()
    assert "Classify the sentiment of a film review." in body and "- topic: plot" in body
    assert "offline" in body and "requests" in body


def test_the_stored_api_key_is_never_displayed(lead_client, project, endpoint):
    for url in (
        reverse("generation:endpoint_list", args=[project.id]),
        reverse("generation:endpoint_edit", args=[project.id, endpoint.id]),
    ):
        body = lead_client.get(url).content.decode()
        assert "sk-very-secret-key" not in body and "stored (hidden)" in body or "A key is stored" in body


def test_a_lead_adds_an_endpoint_and_the_key_is_stored_write_only(lead_client, project):
    lead_client.post(
        reverse("generation:endpoint_list", args=[project.id]),
        {
            "name": "vllm",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "llama",
            "api_key": "sk-typed-once",
            "max_concurrency": 4,
            "rpm": 0,
            "tpm": 0,
            "price_input_per_1k": 0,
            "price_output_per_1k": 0,
            "timeout_seconds": 10,
            "max_retries": 1,
            "supports_response_format": "on",
        },
    )
    endpoint = LLMEndpoint.objects.get(name="vllm")
    assert endpoint.stored_api_key == "sk-typed-once" and endpoint.project == project
    edit = lead_client.post(
        reverse("generation:endpoint_edit", args=[project.id, endpoint.id]),
        {
            "name": "vllm",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "llama",
            "api_key": "",
            "max_concurrency": 4,
            "rpm": 0,
            "tpm": 0,
            "price_input_per_1k": 0,
            "price_output_per_1k": 0,
            "timeout_seconds": 10,
            "max_retries": 1,
        },
    )
    assert edit.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.stored_api_key == "sk-typed-once"  # an empty field keeps the key


def test_test_connection_answers_an_htmx_fragment(lead_client, project, endpoint):
    response = lead_client.post(
        reverse("generation:endpoint_test", args=[project.id, endpoint.id]), HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "OK" in body and "test-model" in body and "<html" not in body


def test_starting_a_run_queues_it_and_the_progress_page_polls(
    lead_client, project, config, samples, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("generation:run_start", args=[project.id, config.id]), {"count": 2}
        )
    run = GenerationRun.objects.get()
    assert response.url == reverse("generation:run_detail", args=[project.id, run.id])
    assert run.status == JobStatus.SUCCEEDED and run.total == 2  # eager Celery in tests
    fragment = lead_client.get(response.url, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="run-stats"' in fragment and "<html" not in fragment and "offline" in fragment


def test_a_running_run_page_polls_and_offers_cancel(lead_client, project, config):
    run = run_start(config=config, user=config.created_by, enqueue_task=False)
    body = lead_client.get(reverse("generation:run_detail", args=[project.id, run.id])).content.decode()
    assert 'hx-trigger="every 1s"' in body and 'name="cancel"' in body


def test_cancel_and_resume_through_the_pages(
    lead_client, project, config, samples, django_capture_on_commit_callbacks
):
    run = run_start(config=config, user=config.created_by, enqueue_task=False)
    lead_client.post(reverse("generation:run_cancel", args=[project.id, run.id]))
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        lead_client.post(reverse("generation:run_resume", args=[project.id, run.id]))
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == 3


def test_the_outputs_viewer_filters_and_counts(lead_client, project, finished_run):
    url = reverse("generation:outputs", args=[project.id])
    body = lead_client.get(url).content.decode()
    assert "offline" in body and "topic=plot" in body
    label = finished_run.items.first().label
    filtered = lead_client.get(
        url, {"condition": "topic=plot", "label": label, "run": finished_run.id}, HTTP_HX_REQUEST="true"
    )
    fragment = filtered.content.decode()
    assert 'id="output-table"' in fragment and "<html" not in fragment
    assert "topic: acting" not in fragment


def test_the_output_detail_shows_prompt_and_raw_output_on_demand(lead_client, project, finished_run):
    item = finished_run.items.first()
    fragment = lead_client.get(
        reverse("generation:output_detail", args=[project.id, item.id]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Raw output" in fragment and "offline" in fragment and "<html" not in fragment


def test_generated_text_is_escaped(lead_client, project, finished_run):
    sample = Sample.objects.filter(origin="generated").first()
    sample.text = "<script>alert(1)</script>"
    sample.save()
    body = lead_client.get(reverse("generation:outputs", args=[project.id])).content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


def test_accepting_a_proposal_makes_a_new_config_version(lead_client, project, config):
    proposal = ConditionValueProposal.objects.create(config=config, dimension="topic", value="music")
    lead_client.post(
        reverse("generation:proposal_decide", args=[project.id, proposal.id]), {"decision": "accept"}
    )
    latest = GenerationConfig.objects.filter(name="reviews").order_by("-version").first()
    assert latest.version == 2 and latest.dimensions[0]["values"] == ["plot", "acting", "music"]


def test_offline_proposals_come_from_the_seed_vocabulary_and_wait_for_review(
    lead_client, project, config, samples
):
    lead_client.post(
        reverse("generation:proposals_request", args=[project.id, config.id]), {"dimension": "topic"}
    )
    proposals = ConditionValueProposal.objects.filter(config=config)
    assert proposals.exists() and all(
        p.status == "pending" and p.source == "offline-markov" for p in proposals
    )


def test_rejecting_a_proposal_keeps_the_config_as_it_was(lead_client, project, config):
    proposal = ConditionValueProposal.objects.create(config=config, dimension="topic", value="music")
    response = lead_client.post(
        reverse("generation:proposal_decide", args=[project.id, proposal.id]), {"decision": "reject"}
    )
    proposal.refresh_from_db()
    assert response.status_code == 302 and proposal.status == "rejected"
    assert GenerationConfig.objects.filter(name="reviews").count() == 1


def test_a_decision_that_is_not_accept_rejects_the_proposal(lead_client, project, config):
    proposal = ConditionValueProposal.objects.create(config=config, dimension="topic", value="music")
    lead_client.post(
        reverse("generation:proposal_decide", args=[project.id, proposal.id]), {"decision": "maybe"}
    )
    proposal.refresh_from_db()
    assert proposal.status == "rejected" and GenerationConfig.objects.filter(name="reviews").count() == 1


def test_proposing_values_for_a_dimension_the_config_lacks_says_so(lead_client, project, config, samples):
    response = lead_client.post(
        reverse("generation:proposals_request", args=[project.id, config.id]),
        {"dimension": "mood"},
        follow=True,
    )
    assert "The config has no dimension &#x27;mood&#x27;." in response.content.decode()
    assert not ConditionValueProposal.objects.filter(config=config).exists()


def test_the_environment_endpoint_is_offered_to_every_project(lead_client, project, settings):
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "env-model"
    body = lead_client.get(reverse("generation:config_new", args=[project.id])).content.decode()
    endpoint = LLMEndpoint.objects.get(project=None)
    assert endpoint.api_key_env == "LLM_API_KEY" and endpoint.model == "env-model"
    assert "env-model" in body
