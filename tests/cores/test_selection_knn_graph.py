"""The blocked kNN graph vote-k builds on (synthstudio.vectors) stays exact with the sampled-threshold top-k."""

from __future__ import annotations

import numpy as np

from synthstudio.vectors import _top_k_full, cosine_knn, top_k_per_row


def test_the_prefiltered_top_k_equals_a_full_partition_on_wide_rows():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 6000)).astype(np.float32)
    fast_indices, fast_values = top_k_per_row(scores, 150)
    full_indices, full_values = _top_k_full(scores, 150)
    assert fast_indices.tolist() == full_indices.tolist()
    assert fast_values.tolist() == full_values.tolist()


def test_rows_with_too_few_candidates_fall_back_to_the_full_partition():
    scores = np.zeros((3, 5000), dtype=np.float32)
    scores[0, 7] = 1.0  # everything else ties at 0: the sampled threshold lets all through, still exact
    scores[1] = -np.arange(5000, dtype=np.float32)
    indices, _ = top_k_per_row(scores, 5)
    assert indices[0].tolist() == [7, 0, 1, 2, 3]
    assert indices[1].tolist() == [0, 1, 2, 3, 4]


def test_cosine_knn_never_lists_an_item_as_its_own_neighbour():
    x = np.random.default_rng(1).normal(size=(30, 4))
    indices, sims = cosine_knn(x, 5, block_size=7, mean_centre=True)
    assert not (indices == np.arange(30)[:, None]).any()
    assert (np.diff(sims, axis=1) <= 0).all()
