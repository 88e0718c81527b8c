"""The offline judge: a deterministic embedding heuristic standing in for LLM-as-judge when no endpoint is
configured, marked "offline" wherever its runs and verdicts show."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.labelling.offline import label_texts
from annotation.labelling.services import codebook_spec
from evaluation.models import JudgeKind, JudgeRating, JudgeRun, PairChoice, PairwiseJudgment
from evaluation.preferences import offline_judge
from evaluation.preferences.files import PairRecord
from evaluation.preferences.judges import judge_run_start
from evaluation.preferences.services import pairwise_import
from generation.models import LLMEndpoint
from synthstudio.embeddings import encode
from synthstudio.models import HumanAnnotation, JobStatus, Project, Sample, text_hash

BADGE = '<span class="badge offline" title="Judged by the offline heuristic judge'


def film_references() -> tuple[list[str], list[int], list[str]]:
    from tests.conftest import LABELS

    names = [label["name"] for label in LABELS]
    texts, owners = [], []
    for index, label in enumerate(LABELS):
        for text in [f"{label['name']}: {label['description']}", *label["examples"]]:
            texts.append(text)
            owners.append(index)
    return texts, owners, names


def rate_offline(texts: list[str], labels: list[str]) -> list[offline_judge.OfflineRating]:
    references, owners, names = film_references()
    return offline_judge.offline_ratings(texts, labels, encode(texts), encode(references), owners, names)


# ---------------------------------------------------------------- the pure judge


def test_a_text_that_fits_its_label_is_rated_above_an_off_topic_one_and_a_mislabelled_one():
    fitting, off_topic, mislabelled = rate_offline(
        [
            "I loved this film, a real delight from start to finish.",
            "The train to Lyon leaves from platform four at noon.",
            "I loved this film, a real delight from start to finish.",
        ],
        ["positive", "positive", "negative"],
    )
    assert fitting.rating in {"A", "B"}, fitting
    assert off_topic.rating == "D", off_topic
    assert "ABCD".index(mislabelled.rating) > "ABCD".index(fitting.rating), mislabelled
    assert "closer to 'positive'" in mislabelled.reason
    assert fitting.reason.startswith("offline: similarity")


def test_empty_very_short_and_repetitive_texts_are_caught_by_the_plain_checks():
    empty, short, repetitive = rate_offline(
        ["   ", "Great!", "delight delight delight delight delight delight"],
        ["positive", "positive", "positive"],
    )
    assert (empty.rating, empty.reason, empty.similarity) == ("D", "offline: empty text", None)
    assert (short.rating, short.reason) == ("D", "offline: very short (1 word)")
    assert repetitive.rating in {"C", "D"}
    assert "mostly repeated words" in repetitive.reason


def test_an_unlabelled_text_is_scored_against_its_nearest_label():
    (rating,) = rate_offline(["Two dull hours I will never get back, what a waste."], [""])
    assert rating.scored_label == "negative"
    assert rating.rating in {"A", "B"}


def test_the_offline_judge_gives_the_same_ratings_and_scores_every_time():
    texts = ["A moving, superb film.", "Dull and far too long.", "The weather is nice today in Paris."]
    assert rate_offline(texts, ["positive", "negative", "positive"]) == rate_offline(
        texts, ["positive", "negative", "positive"]
    )
    prompts, a, b = (
        ["Review the film Alien."] * 2,
        ["Alien is a tense, brilliant horror film.", ""],
        ["Bananas are yellow fruit.", "ok"],
    )
    first = offline_judge.pair_scores(prompts, a, b, encode(prompts), encode(a), encode(b))
    assert first == offline_judge.pair_scores(prompts, a, b, encode(prompts), encode(a), encode(b))


def test_the_relevant_response_wins_in_both_orders_and_equal_responses_tie():
    prompt = ["Write a short review of the film Alien."] * 3
    a = ["Alien is a tense, brilliant science-fiction horror film with a superb cast.",
         "A fine film.", "The film is fine, I enjoyed it."]  # fmt: skip
    b = ["My grandmother grows tomatoes in her garden every summer.", "", "The film is fine, I enjoyed it."]
    (relevant, off_topic), (some, empty), (same_a, same_b) = offline_judge.pair_scores(
        prompt, a, b, encode(prompt), encode(a), encode(b)
    )
    assert offline_judge.pair_winner(relevant, off_topic) == "1"
    assert offline_judge.pair_winner(off_topic, relevant) == "2"
    assert empty == -1.0 and offline_judge.pair_winner(empty, some) == "2"
    assert offline_judge.pair_winner(same_a, same_b) == "tie"
    assert offline_judge.pair_winner(0.50, 0.52) == "tie"  # inside the tie band


# ---------------------------------------------------------------- runs with no endpoint


@pytest.fixture
def no_endpoint(settings):
    settings.LLM_BASE_URL = ""


@pytest.fixture
def pairs(project):
    records = [
        PairRecord("Review the film Alien.", "Alien is a tense, brilliant horror film.", "Bananas are yellow.",
                   "m1", "m2", "1", [("ann1", "a"), ("ann2", "a")]),
        PairRecord("Review the film Heat.", "", "Heat is a gripping crime film with a great cast.",
                   "m1", "m2", "2", [("ann1", "b"), ("ann2", "b")]),
        PairRecord("Review the film Up.", "Up is a moving animated film.", "Up is a moving animated film.",
                   "m1", "m2", "3", [("ann1", "a"), ("ann2", "a")]),
    ]  # fmt: skip
    pairwise_import(project=project, records=records, batch="fixture")


def test_a_rating_run_with_no_endpoint_completes_offline_and_reports_agreement_with_humans(
    project, lead, annotator, samples, no_endpoint, django_capture_on_commit_callbacks
):
    for sample, label in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        sample.final_label = label
        sample.save(update_fields=["final_label"])
    human = ["A", "A", "D", "A"]
    for sample, rating in zip(samples, human, strict=True):
        HumanAnnotation.objects.create(sample=sample, annotator=annotator, rating=rating)

    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=None, limit=10)

    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.is_offline and run.model_name == offline_judge.OFFLINE_JUDGE_NAME and run.endpoint is None
    assert "not an LLM" in run.message
    ratings = {r.sample_id: r for r in JudgeRating.objects.filter(run=run)}
    assert len(ratings) == 4
    assert all(json.loads(r.raw_output)["offline"] is True for r in ratings.values())
    spec = codebook_spec(project.codebook)
    references, owners = label_texts(spec)
    texts = [s.text for s in samples]
    expected = offline_judge.offline_ratings(
        texts, [s.final_label for s in samples], encode(texts), encode(references), owners, spec.label_names
    )
    judged = [ratings[s.id].rating for s in samples]
    assert judged == [r.rating for r in expected]
    assert run.summary["with_humans"] == 4
    assert run.summary["agreement"] == pytest.approx(
        sum(h == j for h, j in zip(human, judged, strict=True)) / 4
    )
    assert run.summary["distribution"] == {g: judged.count(g) for g in "ABCD"}


def test_a_pairwise_run_with_no_endpoint_judges_both_orders_offline_with_no_position_bias(
    project, lead, pairs, no_endpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(project=project, user=lead, kind=JudgeKind.PAIRWISE, endpoint=None, limit=10)

    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    judgments = PairwiseJudgment.objects.filter(judge_run=run).select_related("item", "rater")
    assert judgments.count() == 6
    assert {j.rater.name for j in judgments} == {f"judge run {run.id} (offline heuristic judge)"}
    verdicts = {(j.item.external_id, j.a_shown_first): j.choice for j in judgments}
    assert verdicts == {("1", True): PairChoice.A, ("1", False): PairChoice.A, ("2", True): PairChoice.B,
                        ("2", False): PairChoice.B, ("3", True): PairChoice.TIE, ("3", False): PairChoice.TIE}  # fmt: skip
    assert run.summary["pairs_both_orders"] == 3
    assert run.summary["position_bias_rate"] == 0
    # humans: a, b, a; the judge: a, b, tie → 2 of 3 agree
    assert run.summary["agreement"] == pytest.approx(2 / 3)


def test_the_lead_can_pick_the_offline_judge_when_an_endpoint_is_configured(
    lead_client, project, pairs, openai_server, django_capture_on_commit_callbacks
):
    LLMEndpoint.objects.create(
        project=project, name="test server", base_url=openai_server.base_url, model="judge-model"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:judge_start", args=[project.id]),
            {"kind": "pairwise", "endpoint": "offline", "limit": 5},
        )
    run = JudgeRun.objects.get(project=project)
    assert response["Location"] == reverse("evaluation:judge_detail", args=[project.id, run.id])
    assert run.is_offline and run.status == JobStatus.SUCCEEDED
    assert openai_server.request_count == 0


def test_the_preferences_page_offers_the_offline_judge_when_no_endpoint_is_configured(
    lead_client, project, no_endpoint
):
    body = lead_client.get(reverse("evaluation:metrics_preferences", args=[project.id])).content.decode()
    assert reverse("evaluation:judge_start", args=[project.id]) in body
    assert '<option value="offline">offline judge (embedding heuristic, not an LLM)</option>' in body


def test_the_judge_preferences_and_curation_pages_mark_an_offline_run_offline(
    lead_client, project, lead, samples, no_endpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=None, limit=10)

    detail = lead_client.get(reverse("evaluation:judge_detail", args=[project.id, run.id])).content.decode()
    assert f"Offline judge run #{run.id}" in detail and BADGE in detail
    assert "samples rated" in detail  # the summary cards
    preferences = lead_client.get(
        reverse("evaluation:metrics_preferences", args=[project.id])
    ).content.decode()
    row = preferences.split(f">#{run.id}</a>")[1].split("</tr>")[0]
    assert "offline heuristic judge" in row and BADGE in row
    curation = lead_client.get(reverse("evaluation:curation", args=[project.id])).content.decode()
    assert "4 of 4 samples have a judge rating" in curation and BADGE in curation


def test_an_llm_judge_run_is_not_marked_offline(lead_client, project):
    run = JudgeRun.objects.create(
        project=project, kind=JudgeKind.RATING, base_url="http://judge.test/v1", model_name="m"
    )
    detail = lead_client.get(reverse("evaluation:judge_detail", args=[project.id, run.id])).content.decode()
    assert f"LLM judge run #{run.id}" in detail and BADGE not in detail
    preferences = lead_client.get(
        reverse("evaluation:metrics_preferences", args=[project.id])
    ).content.decode()
    assert BADGE not in preferences.split(f">#{run.id}</a>")[1].split("</tr>")[0]


# ---------------------------------------------------------------- the demo


def test_the_demo_judge_command_makes_one_offline_rating_run_and_not_a_second(project, samples, no_endpoint):
    from evaluation.management.commands.demo_judge import PROJECT_NAME

    Project.objects.filter(pk=project.pk).update(name=PROJECT_NAME)
    Sample.objects.create(
        project=project, text="A superb film.", text_hash=text_hash("A superb film."), final_label="positive"
    )

    call_command("demo_judge")
    call_command("demo_judge")

    run = JudgeRun.objects.get(project=project)
    assert run.is_offline and run.kind == JudgeKind.RATING and run.status == JobStatus.SUCCEEDED
    assert run.summary["judged"] == 5
