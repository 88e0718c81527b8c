"""Pairs made from the project's own generated outputs: two runs (or configs) matched on their condition values,
paired in generation order, duplicates skipped, all or nothing, leads only."""

from __future__ import annotations

import pytest

from evaluation.models import PairwiseItem
from evaluation.preferences.pairs import PairingError, pairwise_from_generation
from generation.models import GenerationItem, GenerationRun, ItemStatus
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_execute, run_start
from synthstudio.models import JobStatus, Project, Sample
from synthstudio.services import codebook_create_version
from tests.conftest import LABELS

pytestmark = pytest.mark.django_db


def make_config(project, lead, name="reviews", **values):
    base = {
        "endpoint": None,
        "template": DEFAULT_TEMPLATE,
        "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
        "target_count": 4,
        "sampling_mode": "all",
    }
    base.update(values)
    return config_create_version(project=project, user=lead, name=name, values=base)


def finished_run(config, lead, outputs: list[tuple[dict, str]], status=JobStatus.SUCCEEDED) -> GenerationRun:
    """A run whose items made exactly these (conditions, text) samples, in this order."""
    run = GenerationRun.objects.create(
        project=config.project,
        created_by=lead,
        config=config,
        status=status,
        model_name="offline-markov",
        total=len(outputs),
    )
    for index, (conditions, text) in enumerate(outputs):
        item = GenerationItem.objects.create(
            run=run, index=index, conditions=conditions, status=ItemStatus.DONE
        )
        sample = Sample.objects.create(
            project=config.project,
            text=text,
            origin="generated",
            provenance={"run": run.id, "conditions": conditions, "kind": config.kind},
        )
        item.samples.add(sample)
    return run


PLOT = {"topic": "plot", "label": "positive"}
ACTING = {"topic": "acting", "label": "negative"}
SCORE = {"topic": "score", "label": "positive"}


@pytest.fixture
def two_runs(project, lead):
    run_a = finished_run(
        make_config(project, lead, "warm"),
        lead,
        [(PLOT, "A plot 1"), (ACTING, "A acting"), (PLOT, "A plot 2"), (SCORE, "A score")],
    )
    run_b = finished_run(
        make_config(project, lead, "cold"),
        lead,
        [(PLOT, "B plot 1"), (ACTING, "B acting"), (ACTING, "B acting 2")],
    )
    return run_a, run_b


def test_pairs_are_made_from_samples_with_the_same_condition_values_in_generation_order(project, two_runs):
    run_a, run_b = two_runs
    result = pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"run:{run_b.id}")
    assert result == {"pairs": 2, "existing": 0, "unmatched_conditions": 1, "unpaired_samples": 3}
    pairs = {(p.response_a, p.response_b) for p in PairwiseItem.objects.filter(project=project)}
    assert pairs == {("A plot 1", "B plot 1"), ("A acting", "B acting")}
    item = PairwiseItem.objects.get(project=project, response_a="A plot 1")
    assert item.prompt == "Generated for label = positive; topic = plot."
    assert item.source_a == f"run #{run_a.id} (warm v1)" and item.source_b == f"run #{run_b.id} (cold v1)"


def test_pairs_that_already_exist_are_skipped_even_with_the_sides_swapped(project, two_runs):
    run_a, run_b = two_runs
    pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"run:{run_b.id}")
    again = pairwise_from_generation(project=project, key_a=f"run:{run_b.id}", key_b=f"run:{run_a.id}")
    assert (again["pairs"], again["existing"]) == (0, 2)
    assert PairwiseItem.objects.filter(project=project).count() == 2


def test_a_config_stands_for_all_its_finished_runs(project, lead, two_runs):
    run_a, run_b = two_runs
    finished_run(run_b.config, lead, [(PLOT, "B plot again")])
    finished_run(run_b.config, lead, [(PLOT, "B still running")], status=JobStatus.RUNNING)
    result = pairwise_from_generation(
        project=project, key_a=f"run:{run_a.id}", key_b=f"config:{run_b.config.id}"
    )
    assert result["pairs"] == 3  # plot ×2 (A plot 2 meets B plot again), acting ×1
    assert PairwiseItem.objects.filter(
        response_a="A plot 2", response_b="B plot again", source_b="config cold v1"
    ).exists()
    assert not PairwiseItem.objects.filter(response_b="B still running").exists()


def test_comparing_a_run_with_itself_is_refused(project, two_runs):
    run_a, _ = two_runs
    with pytest.raises(PairingError, match="two different"):
        pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"run:{run_a.id}")


def test_a_run_and_its_own_config_are_refused_as_overlapping(project, two_runs):
    run_a, _ = two_runs
    with pytest.raises(PairingError, match="share generation runs"):
        pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"config:{run_a.config.id}")


def test_runs_with_no_condition_values_in_common_make_nothing(project, lead, two_runs):
    run_a, _ = two_runs
    other = finished_run(
        make_config(project, lead, "odd"), lead, [({"topic": "sound", "label": "negative"}, "C sound")]
    )
    with pytest.raises(PairingError, match="no condition values in common"):
        pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"run:{other.id}")
    assert not PairwiseItem.objects.exists()


def test_a_run_of_another_project_or_one_still_running_cannot_be_chosen(project, lead, two_runs, outsider):
    run_a, _ = two_runs
    elsewhere = Project.objects.create(name="Elsewhere", created_by=outsider)
    codebook_create_version(
        project=elsewhere, user=outsider, task_description="Anything.", guidelines="", labels=LABELS
    )
    foreign = finished_run(make_config(elsewhere, outsider, "theirs"), outsider, [(PLOT, "theirs")])
    running = finished_run(
        make_config(project, lead, "busy"), lead, [(PLOT, "busy")], status=JobStatus.RUNNING
    )
    for key in (f"run:{foreign.id}", f"run:{running.id}", "run:oops", ""):
        with pytest.raises(PairingError, match="finished generation runs"):
            pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=key)
    assert not PairwiseItem.objects.exists()


def test_offline_runs_of_two_configs_are_paired_end_to_end(project, lead, samples):
    first = run_execute(
        run_id=run_start(config=make_config(project, lead, "one"), user=lead, enqueue_task=False).pk
    )
    second = run_execute(
        run_id=run_start(
            config=make_config(project, lead, "two", temperature=0.5), user=lead, enqueue_task=False
        ).pk
    )
    assert first.status == second.status == JobStatus.SUCCEEDED
    result = pairwise_from_generation(
        project=project, key_a=f"config:{first.config_id}", key_b=f"config:{second.config_id}"
    )
    assert result["pairs"] == 4 and result["unmatched_conditions"] == 0
    item = PairwiseItem.objects.filter(project=project).first()
    assert item.response_a and item.response_b and item.prompt.startswith("Generated for label = ")


# ---------------------------------------------------------------- the lead's page


def test_the_lead_makes_pairs_from_the_page_and_is_told_how_many(lead_client, project, two_runs):
    run_a, run_b = two_runs
    url = f"/projects/{project.id}/evaluation/preferences/from-generation/"
    page = lead_client.get(url).content.decode()
    assert f'value="run:{run_a.id}"' in page and f'value="config:{run_b.config_id}"' in page
    response = lead_client.post(url, {"a": f"run:{run_a.id}", "b": f"run:{run_b.id}"}, follow=True)
    body = response.content.decode()
    assert "Made 2 pairs (0 already existed). 1 condition combinations had no partner" in body
    assert PairwiseItem.objects.filter(project=project).count() == 2


def test_the_page_shows_why_nothing_was_made(lead_client, project, two_runs):
    run_a, _ = two_runs
    url = f"/projects/{project.id}/evaluation/preferences/from-generation/"
    body = lead_client.post(url, {"a": f"run:{run_a.id}", "b": f"run:{run_a.id}"}).content.decode()
    assert "Choose two different runs or configs" in body
    assert not PairwiseItem.objects.exists()


def test_an_annotator_gets_403_and_an_outsider_404_on_the_pairing_page(
    client, annotator, outsider, project, two_runs
):
    run_a, run_b = two_runs
    url = f"/projects/{project.id}/evaluation/preferences/from-generation/"
    data = {"a": f"run:{run_a.id}", "b": f"run:{run_b.id}"}
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    assert client.post(url, data).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.post(url, data).status_code == 404
    assert not PairwiseItem.objects.exists()
