"""The pure refinement core: student probabilities, FreeAL split, confident-learning label issues."""

import numpy as np

from evaluation.curation.student import (
    class_thresholds,
    find_label_issues,
    freeal_split,
    precision_at,
    refine_labels,
    student_probabilities,
)


def blobs_with_flipped_labels(n_per_class=60, n_flipped=12, seed=3):
    rng = np.random.default_rng(seed)
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    features = np.vstack([rng.normal(centre, 0.6, size=(n_per_class, 3)) for centre in centres])
    gold = np.repeat(np.arange(3), n_per_class)
    flipped = rng.choice(len(gold), size=n_flipped, replace=False)
    given = gold.copy()
    given[flipped] = (gold[flipped] + 1) % 3
    return features, gold, given, set(int(i) for i in flipped)


def test_the_flipped_labels_rank_first_in_the_label_issue_list():
    features, _, given, flipped = blobs_with_flipped_labels()
    result = refine_labels(features, given, np.zeros(len(given), dtype=bool), n_classes=3)
    assert precision_at(result.issues, flipped, len(flipped)) >= 0.9


def test_each_issue_suggests_the_true_class_on_separable_blobs():
    features, gold, given, flipped = blobs_with_flipped_labels()
    result = refine_labels(features, given, np.zeros(len(given), dtype=bool), n_classes=3)
    top = result.issues[: len(flipped)]
    assert all(issue.suggested == gold[issue.index] for issue in top if issue.index in flipped)


def test_human_verified_items_are_never_reported_as_issues():
    features, _, given, flipped = blobs_with_flipped_labels()
    verified = np.zeros(len(given), dtype=bool)
    verified[list(flipped)] = True
    result = refine_labels(features, given, verified, n_classes=3)
    assert not {issue.index for issue in result.issues} & flipped


def test_freeal_puts_the_flipped_items_in_the_noisy_part():
    features, _, given, flipped = blobs_with_flipped_labels()
    probabilities = student_probabilities(features, given, n_classes=3)
    split = freeal_split(probabilities, given)
    noisy = set(np.flatnonzero(~split.clean).tolist())
    assert len(noisy & flipped) >= 0.9 * len(flipped)
    assert split.loss.min() == 0.0 and split.loss.max() == 1.0


def test_out_of_fold_probabilities_do_not_memorise_a_lone_wrong_label():
    features, _, given, flipped = blobs_with_flipped_labels(n_flipped=1)
    (index,) = flipped
    probabilities = student_probabilities(features, given, n_classes=3)
    assert probabilities[index, given[index]] < 0.5
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_items_without_a_training_label_are_scored_by_the_full_model():
    features, gold, _, _ = blobs_with_flipped_labels(n_flipped=0)
    train = gold.copy()
    train[::2] = -1
    probabilities = student_probabilities(features, train, n_classes=3)
    assert (np.argmax(probabilities[::2], axis=1) == gold[::2]).mean() > 0.95


def test_class_thresholds_are_the_mean_self_confidence_of_each_class():
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    labels = np.array([0, 0, 1, 1])
    assert np.allclose(class_thresholds(probabilities, labels, 2), [0.8, 0.7])


def test_an_item_confidently_in_another_class_is_an_issue_ranked_by_margin():
    probabilities = np.array([[0.9, 0.1], [0.85, 0.15], [0.1, 0.9], [0.1, 0.9], [0.05, 0.95], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1, 1, 1])  # item 2 says 0 but looks like 1; item 5 is unsure but fine
    thresholds = class_thresholds(probabilities, labels, 2)
    assert np.allclose(thresholds, [(0.9 + 0.85 + 0.1) / 3, 0.85])
    issues = find_label_issues(probabilities, labels)
    assert [(i.index, i.given, i.suggested) for i in issues] == [(2, 0, 1)]
    assert abs(issues[0].margin - 0.8) < 1e-9


def test_precision_counts_a_short_list_as_misses():
    probabilities = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    issues = find_label_issues(probabilities, np.array([0, 0, 0, 1]))
    assert precision_at(issues, {0, 1}, 2) == 0.5
