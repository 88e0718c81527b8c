"""The pure refinement core: student probabilities, FreeAL split, confident-learning label issues."""

import numpy as np

from evaluation.curation.student import (
    MIN_MARGIN,
    class_medoids,
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


def test_an_item_confidently_in_another_class_is_an_issue_with_its_margin():
    probabilities = np.array([[0.9, 0.1], [0.85, 0.15], [0.1, 0.9], [0.1, 0.9], [0.05, 0.95], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1, 1, 1])  # item 2 says 0 but looks like 1; item 5 is unsure but fine
    issues = find_label_issues(probabilities, labels)
    assert [(i.index, i.given, i.suggested) for i in issues] == [(2, 0, 1)]
    assert abs(issues[0].margin - 0.8) < 1e-9
    assert abs(issues[0].self_confidence - 0.1) < 1e-9


def test_no_issue_is_flagged_with_a_negative_or_negligible_margin():
    # item 4: labelled 2, its own class still the most probable, yet class 0 clears class 0's low threshold —
    # the hand-written rule flagged such items with a negative margin (issue 14, item 8)
    probabilities = np.array(
        [
            [0.40, 0.30, 0.30],
            [0.38, 0.31, 0.31],
            [0.10, 0.80, 0.10],
            [0.10, 0.10, 0.80],
            [0.39, 0.10, 0.51],
            [0.05, 0.05, 0.90],
            [0.50, 0.05, 0.45],  # margin 0.05: too small to call the label wrong
        ]
    )
    labels = np.array([0, 0, 1, 2, 2, 2, 2])
    assert find_label_issues(probabilities, labels) == []
    features, _, given, _ = blobs_with_flipped_labels(n_flipped=20)
    result = refine_labels(features, given, np.zeros(len(given), dtype=bool), n_classes=3)
    assert result.issues
    assert all(issue.margin > MIN_MARGIN for issue in result.issues)


def test_issues_rank_lowest_self_confidence_first():
    probabilities = np.array([[0.9, 0.1]] * 5 + [[0.08, 0.92], [0.05, 0.95]] + [[0.1, 0.9]] * 5)
    labels = np.array([0] * 7 + [1] * 5)
    issues = find_label_issues(probabilities, labels)
    assert [issue.index for issue in issues] == [6, 5]


def test_clean_labels_are_rarely_flagged():
    features, gold, _, _ = blobs_with_flipped_labels(n_flipped=0)
    result = refine_labels(features, gold, np.zeros(len(gold), dtype=bool), n_classes=3)
    assert len(result.issues) < 0.05 * len(gold)


def test_labels_outside_the_labelled_set_are_skipped():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.05, 0.95]])
    assert find_label_issues(probabilities, np.array([0, 0, 1, 1, -1])) == []
    assert [i.index for i in find_label_issues(probabilities, np.array([0, 0, 1, 0, -1]))] == [3]


def test_precision_counts_a_short_list_as_misses():
    probabilities = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    issues = find_label_issues(probabilities, np.array([0, 0, 0, 1]))
    assert precision_at(issues, {0, 1}, 2) == 0.5


def test_class_medoids_pick_one_real_item_near_each_cluster_of_each_class():
    rng = np.random.default_rng(0)
    centres = {0: [[0, 0], [10, 0]], 1: [[0, 10], [10, 10]]}
    features, labels = [], []
    for label, spots in centres.items():
        for spot in spots:
            features.append(rng.normal(spot, 0.3, size=(15, 2)))
            labels += [label] * 15
    features, labels = np.vstack(features), np.array(labels)
    candidates = np.ones(len(labels), dtype=bool)
    candidates[:5] = False  # not clean: never a demo
    picked = class_medoids(features, labels, candidates, per_class=2)
    assert len(picked) == 4 and len(set(picked)) == 4 and not set(picked) & set(range(5))
    assert [labels[i] for i in picked] == [0, 0, 1, 1]
    spots_hit = {tuple(np.round(features[i] / 10)) for i in picked}
    assert spots_hit == {(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)}  # one demo per cluster
    assert class_medoids(features, labels, labels == 1, per_class=50) == list(np.flatnonzero(labels == 1))
