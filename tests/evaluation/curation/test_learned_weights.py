"""Sample weights as a project option: the rule (default) or weights learned against the human-verified items
(held-out loss), used by snapshots and their exports, named in the dataset card and on the snapshot page, and
trained with by the downstream benchmark."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.benchmark.services import benchmark_run
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.curation.weights import sample_weights_get, sample_weights_save
from evaluation.export.writers import dataset_card
from evaluation.models import BenchmarkRun, CurationSettings, SampleWeighting
from synthstudio.models import FinalSource, HumanAnnotation, JobStatus, LabelMethod, LLMAnnotation, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

POSITIVE = [
    "great film",
    "wonderful acting",
    "great story",
    "lovely and great",
    "wonderful score",
    "great fun",
]
NEGATIVE = ["awful film", "boring acting", "awful story", "dull and awful", "boring score", "awful mess"]
WRONG_LLM = {"wonderful acting", "boring acting"}  # LLM-labelled, with the wrong label


@pytest.fixture
def labelled(project, annotator):
    """Twelve reviews: every other one verified by a human (the truth), the rest LLM-labelled, two wrongly."""
    for index, text in enumerate(POSITIVE + NEGATIVE):
        truth = "positive" if text in POSITIVE else "negative"
        llm = ("negative" if truth == "positive" else "positive") if text in WRONG_LLM else truth
        sample = Sample.objects.create(project=project, text=text)
        LLMAnnotation.objects.create(
            sample=sample, label=llm, distribution={llm: 0.8}, confidence=0.8, method=LabelMethod.IMPORTED
        )
        if index % 2 == 0:
            HumanAnnotation.objects.create(sample=sample, annotator=annotator, label=truth)
        final_label_refresh(sample=sample)
    assert Sample.objects.filter(project=project, final_source=FinalSource.HUMAN).count() == 6
    return project


def weights_by_text(snapshot) -> dict[str, tuple[float, str]]:
    return {
        text: (weight, source)
        for text, weight, source in snapshot.items.values_list("text", "weight", "label_source")
    }


def test_by_default_a_snapshot_keeps_the_rule_weights_and_says_so(labelled, lead):
    assert sample_weights_get(project=labelled) == SampleWeighting.RULE
    snapshot = snapshot_create(project=labelled, user=lead, settings=FilterSettings())
    weights = weights_by_text(snapshot)
    assert weights["wonderful acting"] == (0.8, FinalSource.LLM)  # the LLM's confidence
    assert weights["great film"] == (1.0, FinalSource.HUMAN)
    assert snapshot.stats["weights"]["method"] == "rule"
    card = dataset_card(snapshot, {"train": snapshot.item_count})
    assert "Sample weights: `weight` is the final-label rule" in card


def test_learned_weights_make_the_llm_labels_humans_contradict_weigh_less(labelled, lead):
    sample_weights_save(project=labelled, method=SampleWeighting.LEARNED)
    snapshot = snapshot_create(project=labelled, user=lead, settings=FilterSettings())
    weights = weights_by_text(snapshot)
    llm = {text: weight for text, (weight, source) in weights.items() if source == FinalSource.LLM}
    wrong = [llm[text] for text in WRONG_LLM]
    right = [weight for text, weight in llm.items() if text not in WRONG_LLM]
    assert max(wrong) < min(right), (wrong, right)
    assert sum(llm.values()) / len(llm) == pytest.approx(1.0, abs=1e-4)  # mean 1 over the LLM rows
    assert all(weight == 1.0 for weight, source in weights.values() if source == FinalSource.HUMAN)
    assert snapshot.stats["weights"] == {
        "requested": "learned",
        "method": "learned",
        "validation_items": 6,
        "description": snapshot.stats["weights"]["description"],
    }
    card = dataset_card(snapshot, {"train": snapshot.item_count})
    assert (
        "Sample weights: `weight` is learned by held-out loss" in card and "(6 human-verified items)" in card
    )


def test_learned_weights_without_two_verified_labels_fall_back_to_the_rule_and_say_why(project, lead):
    for text in POSITIVE[:3]:
        sample = Sample.objects.create(project=project, text=text)
        LLMAnnotation.objects.create(
            sample=sample, label="positive", distribution={"positive": 0.7}, confidence=0.7,
            method=LabelMethod.IMPORTED,
        )  # fmt: skip
        final_label_refresh(sample=sample)
    sample_weights_save(project=project, method=SampleWeighting.LEARNED)
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    assert set(snapshot.items.values_list("weight", flat=True)) == {0.7}
    assert (
        snapshot.stats["weights"]["method"] == "rule" and snapshot.stats["weights"]["requested"] == "learned"
    )
    assert "two labels or more" in dataset_card(snapshot, {"train": 3})


def test_an_unknown_method_is_refused(project):
    with pytest.raises(ValueError):
        sample_weights_save(project=project, method="magic")
    assert not CurationSettings.objects.filter(project=project).exists()


def test_the_lead_chooses_learned_weights_on_the_curation_page(
    lead_client, labelled, django_capture_on_commit_callbacks
):
    page = lead_client.get(reverse("evaluation:curation", args=[labelled.id])).content.decode()
    assert 'name="sample_weights"' in page and '<option value="rule" selected>' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:snapshot_new", args=[labelled.id]),
            {"sample_weights": "learned", "licence": "cc-by-4.0"},
        )
    assert response.status_code == 302
    assert sample_weights_get(project=labelled) == SampleWeighting.LEARNED
    detail = lead_client.get(reverse("evaluation:snapshot_detail", args=[labelled.id, 1])).content.decode()
    assert "sample weights: learned (held-out loss, 6 human-verified items)" in detail
    page = lead_client.get(reverse("evaluation:curation", args=[labelled.id])).content.decode()
    assert '<option value="learned" selected>' in page


def test_a_snapshot_form_without_the_choice_keeps_the_saved_one(lead_client, labelled):
    sample_weights_save(project=labelled, method=SampleWeighting.LEARNED)
    lead_client.post(reverse("evaluation:snapshot_new", args=[labelled.id]), {"licence": "unknown"})
    assert sample_weights_get(project=labelled) == SampleWeighting.LEARNED


def test_the_benchmark_trains_a_learned_snapshot_with_its_weights_beside_unweighted(labelled, lead):
    sample_weights_save(project=labelled, method=SampleWeighting.LEARNED)
    snapshot_create(project=labelled, user=lead, settings=FilterSettings())
    run = benchmark_run(run=BenchmarkRun.objects.create(project=labelled, test_fraction=0.3, seed=1))
    assert run.status == JobStatus.SUCCEEDED
    plain = [r for r in run.results if r["training_set"] == "Snapshot v1"]
    weighted = [r for r in run.results if r["training_set"] == "Snapshot v1 · weighted (learned)"]
    assert len(weighted) == len(plain) == 2
    assert [r["n_train"] for r in weighted] == [r["n_train"] for r in plain]
    assert all(r["accuracy"] is not None for r in weighted)


@pytest.mark.browser
def test_a_lead_makes_a_snapshot_with_learned_weights_in_the_browser(
    browser_page, live_server, lead, labelled, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{labelled.id}/curation/")
    page.select_option("select[name=sample_weights]", "learned")
    page.click("button[name=create_snapshot]")
    page.wait_for_url("**/curation/snapshots/jobs/*/")
    page.wait_for_selector("#open-snapshot", timeout=60_000)
    page.click("#open-snapshot")
    page.wait_for_url("**/curation/snapshots/1/")
    assert "sample weights: learned" in page.locator("#snapshot-weights").inner_text()
    screenshot(page, "curation-learned-weights")
    with page.expect_download() as download_info:
        page.click("a[href$='/download/jsonl/']")
    rows = {row["text"]: row for row in map(json.loads, open(download_info.value.path(), encoding="utf-8"))}
    assert rows["wonderful acting"]["weight"] < rows["great fun"]["weight"]  # contradicted vs confirmed
