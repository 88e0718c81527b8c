"""Cold-start strategies carry earlier picks: vote-k's discount counts the items earlier batches selected and
k-means covers the clusters no earlier pick is in (annotation.routing.selection), through the planner and the
routing service (a second cold-start batch goes where the first did not)."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask, RoutingPolicy
from annotation.routing.plan import plan_routing_batch
from annotation.routing.selection import kmeans_select, votek_select
from annotation.routing.services import routing_policy_for, routing_route_next_batch
from synthstudio.models import LabelMethod, Sample

# three tight, well-separated blobs: A (12 items), B (10), C (8)
BLOB = np.repeat([0, 1, 2], [12, 10, 8])


def blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 10
    return centres[BLOB] + rng.normal(0, 0.3, (len(BLOB), 3))


def test_vote_k_restarting_picks_the_same_dense_blob_again_carrying_moves_on():
    x = blobs()
    first = votek_select(x, 1, k=11)
    left = np.setdiff1d(np.arange(len(x)), first)
    restart = left[votek_select(x[left], 1, k=11)]
    carry = votek_select(x, 1, k=11, already_selected=first)
    # blind to the earlier pick, vote-k takes the next item of the same blob (its voters still count in full)
    assert BLOB[restart].tolist() == BLOB[first].tolist()
    assert BLOB[carry].tolist() != BLOB[first].tolist() and carry[0] not in first


def test_vote_k_with_earlier_picks_continues_the_one_shot_greedy():
    x = blobs(1)
    whole = votek_select(x, 6, k=8)
    continued = votek_select(x, 3, k=8, already_selected=whole[:3])
    assert continued.tolist() == whole[3:].tolist()


def test_k_means_skips_the_clusters_earlier_picks_hit():
    x = blobs()
    earlier = np.array([0])  # a member of A
    left = np.setdiff1d(np.arange(len(x)), earlier)
    restart = left[kmeans_select(x[left], 2, seed=0)]
    carry = kmeans_select(x, 2, seed=0, already_selected=earlier)
    assert 0 in BLOB[restart]  # a fresh k-means puts a centre on A again
    assert sorted(BLOB[carry].tolist()) == [1, 2] and 0 not in carry


def test_k_means_never_returns_earlier_picks_and_fills_the_budget():
    x = blobs(2)
    earlier = np.arange(0, 30, 2)
    picks = kmeans_select(x, 10, seed=3, already_selected=earlier)
    assert len(picks) == 10 == len(set(picks.tolist())) and not set(picks.tolist()) & set(earlier.tolist())
    rest = kmeans_select(x, 50, already_selected=earlier)
    assert sorted(rest.tolist()) == list(range(1, 30, 2))  # more wanted than left: everything left
    with pytest.raises(ValueError):
        kmeans_select(x, 1, already_selected=[30])


def test_the_planner_carries_rows_humans_already_have():
    # blobs bigger than vote-k's k = 150, so its kNN graph is not everything-votes-for-everything
    sizes = [200, 170, 160]
    blob = np.repeat([0, 1, 2], sizes)
    x = np.eye(3)[blob] * 10 + np.random.default_rng(0).normal(0, 0.6, (len(blob), 3))
    probs = np.tile([0.6, 0.4], (len(x), 1))
    first = votek_select(x, 1)
    candidates = np.setdiff1d(np.arange(len(x)), first)
    for strategy in ("kmeans", "votek", "votek_two_stage"):
        restart = plan_routing_batch(
            strategy=strategy, probs=probs, candidates=candidates, size=2, embeddings=x
        )
        carry = plan_routing_batch(
            strategy=strategy,
            probs=probs,
            candidates=candidates,
            size=2,
            embeddings=x,
            already_selected=first,
        )
        assert blob[first[0]] in blob[[p.index for p in restart]], strategy
        assert sorted(blob[[p.index for p in carry]].tolist()) == sorted({0, 1, 2} - {blob[first[0]]}), (
            strategy
        )
        assert all(p.index in candidates for p in carry)
    assert carry[0].reason.startswith("vote-k two-stage")
    kmeans = plan_routing_batch(
        strategy="kmeans", probs=probs, candidates=candidates, size=2, embeddings=x, already_selected=first
    )
    assert kmeans[0].reason == "k-means: nearest to the centre of a cluster no earlier pick is in"


TOPICS = {
    "football": "The striker scored a late goal and the football crowd cheered",
    "baking": "She baked sourdough bread with a crisp crust in the hot oven",
    "astronomy": "The telescope showed the rings of Saturn and a distant galaxy",
}


def topic_project(project, per_topic: dict[str, int]) -> dict[int, str]:
    """Samples about three topics with current LLM labels; returns {sample id: topic}."""
    topic_of: dict[int, str] = {}
    samples = []
    for topic, count in per_topic.items():
        for i in range(count):
            sample = Sample.objects.create(
                project=project, text=f"{TOPICS[topic]} (note {i}, day {i * 7 % 5})"
            )
            samples.append(sample)
            topic_of[sample.pk] = topic
    llm_annotations_record(
        samples=samples,
        readings=[LabelReading("positive", {"positive": 0.7, "negative": 0.3}, True, confidence=0.7)]
        * len(samples),
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="test",
        run_ref="test",
    )
    return topic_of


def test_a_second_cold_start_batch_covers_topics_the_first_left_out(project):
    """k-means through the service: each one-item batch lands on a topic no earlier batch covered. (vote-k needs
    more items than its k = 150 to tell regions apart; the planner test above covers it.)"""
    strategy = "kmeans"
    topic_of = topic_project(project, {"football": 14, "baking": 9, "astronomy": 7})
    routing = routing_policy_for(project=project)
    routing.cold_start_strategy = strategy
    routing.cold_start_size = 3
    routing.batch_size = 1
    routing.budget_kind = "count"
    routing.budget_count = 3
    routing.save()
    batches = [routing_route_next_batch(project=project) for _ in range(3)]
    assert [len(b) for b in batches] == [1, 1, 1]
    # one pick per batch, and the three batches together cover the three topics
    assert {topic_of[b[0].sample_id] for b in batches} == set(TOPICS)
    assert ReviewTask.objects.filter(project=project).values("sample").distinct().count() == 3
    assert RoutingPolicy.objects.get(project=project).cold_start_strategy == strategy
