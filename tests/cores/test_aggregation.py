"""Annotator-aware aggregation (Dawid–Skene via crowd-kit) against majority vote on simulated annotators."""

import numpy as np

from annotation.review.aggregation import (
    DawidSkeneFit,
    dawid_skene_fit,
    dawid_skene_label,
    dawid_skene_posterior,
    majority_label,
)

LABELS = ["neg", "pos"]


def simulate(accuracies, *, items=600, overlap=3, seed=0):
    """(item, annotator, label) answers of annotators with known accuracies, and the true labels."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=items)
    answers = []
    for item in range(items):
        for annotator in rng.choice(len(accuracies), size=overlap, replace=False):
            right = rng.random() < accuracies[annotator]
            answers.append((item, f"a{annotator}", LABELS[truth[item] if right else 1 - truth[item]]))
    return answers, [LABELS[t] for t in truth]


def votes_by_item(answers):
    votes = {}
    for item, annotator, label in answers:
        votes.setdefault(item, {})[annotator] = label
    return votes


def test_dawid_skene_beats_majority_vote_when_reliability_differs():
    accuracies = [0.9, 0.85, 0.8, 0.6, 0.55]
    answers, truth = simulate(accuracies, items=2000)
    votes = votes_by_item(answers)
    fit = dawid_skene_fit(answers, labels=LABELS)
    majority = np.mean([majority_label(votes[i].values()) == truth[i] for i in votes])
    dawid_skene = np.mean([dawid_skene_label(fit, votes[i])[0] == truth[i] for i in votes])
    assert dawid_skene >= majority + 0.03


def test_estimated_accuracies_are_close_to_the_true_ones():
    accuracies = [0.9, 0.85, 0.8, 0.6, 0.55]
    answers, _ = simulate(accuracies, items=1000)
    fit = dawid_skene_fit(answers, labels=LABELS)
    estimated = [fit.accuracy[f"a{i}"] for i in range(len(accuracies))]
    assert np.max(np.abs(np.array(estimated) - accuracies)) < 0.06
    assert sum(fit.answers.values()) == len(answers)


def test_gold_items_anchor_the_fit_when_the_majority_is_systematically_wrong():
    # two annotators who flip every label outvote the one who is right: majority vote and an unanchored
    # Dawid–Skene (started from majority vote) both settle on the flipped labels; 5 % gold fixes that
    answers, truth = simulate([0.95, 0.1, 0.1], items=400, overlap=3, seed=1)
    votes = votes_by_item(answers)
    gold = {item: truth[item] for item in range(0, 400, 20)}
    plain = dawid_skene_fit(answers, labels=LABELS)
    anchored = dawid_skene_fit(answers, labels=LABELS, gold=gold)
    scored = [item for item in votes if item not in gold]
    plain_right = np.mean([dawid_skene_label(plain, votes[i])[0] == truth[i] for i in scored])
    anchored_right = np.mean([dawid_skene_label(anchored, votes[i])[0] == truth[i] for i in scored])
    assert plain_right < 0.2
    assert anchored_right > 0.9
    assert anchored.accuracy["a0"] > 0.85 and anchored.accuracy["a1"] < 0.2
    assert anchored.gold_answers["a0"] == len(gold)


def test_a_reliable_annotator_settles_what_a_vote_would_tie():
    answers, _ = simulate([0.95, 0.9, 0.55], items=400, overlap=2, seed=2)
    fit = dawid_skene_fit(answers, labels=LABELS)
    assert majority_label(["pos", "neg"]) is None
    label, posterior = dawid_skene_label(fit, {"a0": "pos", "a2": "neg"})
    assert label == "pos" and posterior > 0.8
    assert dawid_skene_label(fit, {"a0": "neg", "a2": "pos"})[0] == "neg"


def test_an_unseen_annotator_and_label_get_the_fallback_and_the_fit_round_trips_as_json():
    answers, _ = simulate([0.9, 0.8, 0.7], items=200)
    fit = DawidSkeneFit.from_json(dawid_skene_fit(answers, labels=LABELS).as_json())
    posterior = dawid_skene_posterior(fit, {"newcomer": "pos"})
    assert posterior["pos"] > posterior["neg"]
    assert abs(sum(posterior.values()) - 1) < 1e-9
    assert set(dawid_skene_posterior(fit, {"a0": "maybe"})) == {"neg", "pos", "maybe"}
    assert DawidSkeneFit.from_json({}) is None
    assert dawid_skene_fit([], labels=LABELS) is None
