"""Dawid–Skene as the project's way of combining answers: the lead switches it on the Review overview, each
annotator's estimated accuracy shows there, and final labels follow the more reliable annotator."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import GoldItem, LabelAggregation, ReviewSettings
from annotation.review.final_labels import final_label_refresh
from synthstudio.models import (
    FinalSource,
    HumanAnnotation,
    LabelMethod,
    LLMAnnotation,
    Membership,
    Role,
    Sample,
)
from tests.conftest import make_user

TRUTH = ["positive", "negative"]


@pytest.fixture
def crowd(project, annotator):
    """Three annotators on 80 samples, two per sample: `annotator` right 95 %, `second` right 90 %, `guesser`
    right 50 %; the last sample is answered by the best and the guesser only, and they disagree."""
    second, guesser = make_user("sam_second"), make_user("gus_guesser")
    for user in (second, guesser):
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    people = [(annotator, 0.95), (second, 0.9), (guesser, 0.5)]
    rng = np.random.default_rng(4)
    samples = []
    for i in range(80):
        truth = TRUTH[i % 2] if i < 79 else "positive"
        sample = Sample.objects.create(project=project, text=f"review {i}")
        LLMAnnotation.objects.create(
            sample=sample, label="negative", distribution={"negative": 0.6}, confidence=0.6,
            method=LabelMethod.IMPORTED,
        )  # fmt: skip
        pair = [people[j] for j in rng.choice(3, size=2, replace=False)] if i < 79 else [people[0], people[2]]
        for user, accuracy in pair:
            right = rng.random() < accuracy if i < 79 else user == annotator
            label = truth if right else TRUTH[1 - TRUTH.index(truth)]
            HumanAnnotation.objects.create(sample=sample, annotator=user, label=label)
        final_label_refresh(sample=sample)
        samples.append((sample, truth))
    for sample, truth in samples[:8]:
        GoldItem.objects.create(project=project, sample=sample, label=truth)
    return {"samples": samples, "best": annotator, "second": second, "guesser": guesser}


def switch(client, project, method):
    url = reverse("annotation:label_aggregation_set", args=[project.id])
    return client.post(url, {"method": method})


def test_by_default_a_split_pair_waits_for_adjudication_with_the_llm_label(crowd):
    sample, truth = crowd["samples"][-1]
    sample.refresh_from_db()
    assert truth == "positive"
    assert (sample.final_label, sample.final_source) == ("negative", FinalSource.LLM)


def test_dawid_skene_lets_the_reliable_annotator_settle_the_split_pair(lead_client, project, crowd):
    response = switch(lead_client, project, LabelAggregation.DAWID_SKENE)
    assert response.status_code == 302
    settings = ReviewSettings.objects.get(project=project)
    assert settings.label_aggregation == LabelAggregation.DAWID_SKENE
    sample, truth = crowd["samples"][-1]
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source) == (truth, FinalSource.HUMAN)
    assert 0.5 < sample.final_weight <= 1.0
    accuracy = settings.annotator_reliability["accuracy"]
    assert accuracy[str(crowd["best"].pk)] > accuracy[str(crowd["guesser"].pk)] + 0.2
    assert settings.annotator_reliability["gold_answers"][str(crowd["best"].pk)] > 0


def test_an_answer_after_the_fit_is_aggregated_with_the_stored_estimates(lead_client, project, crowd):
    switch(lead_client, project, LabelAggregation.DAWID_SKENE)
    sample = Sample.objects.create(project=project, text="a new review")
    HumanAnnotation.objects.create(sample=sample, annotator=crowd["guesser"], label="negative")
    HumanAnnotation.objects.create(sample=sample, annotator=crowd["best"], label="positive")
    assert final_label_refresh(sample=sample).label == "positive"


def test_switching_back_to_majority_vote_restores_the_vote(lead_client, project, crowd):
    switch(lead_client, project, LabelAggregation.DAWID_SKENE)
    switch(lead_client, project, LabelAggregation.MAJORITY)
    sample, _ = crowd["samples"][-1]
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source) == ("negative", FinalSource.LLM)


def test_the_overview_shows_each_annotators_estimated_accuracy(lead_client, project, crowd):
    page = lead_client.get(reverse("annotation:review_overview", args=[project.id])).content.decode()
    assert "not estimated yet" in page
    switch(lead_client, project, LabelAggregation.MAJORITY)
    page = lead_client.get(reverse("annotation:review_overview", args=[project.id])).content.decode()
    settings = ReviewSettings.objects.get(project=project)
    assert settings.label_aggregation == LabelAggregation.MAJORITY
    for user in (crowd["best"], crowd["second"], crowd["guesser"]):
        shown = round(100 * settings.annotator_reliability["accuracy"][str(user.pk)])
        assert f"{shown}%" in page or f"{shown} %" in page
    assert "Estimated accuracy" in page and "as of" in page


def test_an_unknown_method_is_refused_and_changes_nothing(lead_client, project, crowd):
    response = switch(lead_client, project, "coin_flip")
    assert response.status_code == 302
    assert not ReviewSettings.objects.filter(project=project).exclude(label_aggregation="majority").exists()


def test_annotators_cannot_switch_the_method(annotator_client, project, crowd):
    assert switch(annotator_client, project, LabelAggregation.DAWID_SKENE).status_code == 403


def test_a_snapshot_records_which_way_answers_were_combined(lead_client, project, lead, crowd):
    from annotation.review.final_labels import LABEL_POLICY, LABEL_POLICY_DAWID_SKENE
    from evaluation.curation.snapshots import snapshot_reserve

    assert snapshot_reserve(project=project, user=lead).label_policy == LABEL_POLICY
    switch(lead_client, project, LabelAggregation.DAWID_SKENE)
    assert snapshot_reserve(project=project, user=lead).label_policy == LABEL_POLICY_DAWID_SKENE
