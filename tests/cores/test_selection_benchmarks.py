"""The selection benchmark commands on tiny inputs (the full-size runs are for the report, not for CI)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.management.commands.bench_coldstart import heldout_accuracy, read_labelled
from annotation.management.commands.bench_embed import fresh_texts


def test_bench_selection_times_one_strategy_in_process():
    out = StringIO()
    call_command("bench_selection", n=400, dim=8, select=10, only="votek", stdout=out)
    result = json.loads(out.getvalue())
    assert result["selected"] == 10
    assert result["peak_rss_mb"] > 0


def test_bench_selection_rejects_an_unknown_strategy():
    with pytest.raises(CommandError, match="unknown strategies"):
        call_command("bench_selection", n=100, dim=4, select=2, strategies="votek,psychic", stdout=StringIO())


def test_bench_coldstart_reads_sst2_lines_and_csv_files(tmp_path):
    sst = tmp_path / "train.txt"
    sst.write_text("1 a fine film\n0 a dull film\n")
    assert read_labelled(sst) == (["a fine film", "a dull film"], ["1", "0"])
    banking = tmp_path / "train.csv"
    banking.write_text('text,category\n"Where is my card?",card_arrival\n')
    assert read_labelled(banking) == (["Where is my card?"], ["card_arrival"])
    with pytest.raises(CommandError, match="does not exist"):
        read_labelled(tmp_path / "missing.csv")


def test_heldout_accuracy_handles_a_single_picked_class():
    import numpy as np

    x = np.array([[0.0], [1.0]])
    assert heldout_accuracy(x, np.array(["a", "a"]), x, np.array(["a", "b"])) == 0.5
    assert heldout_accuracy(x, np.array(["a", "b"]), x, np.array(["a", "b"])) == 1.0


def test_bench_embed_texts_are_distinct_and_new_every_run():
    first, second = fresh_texts(50, seed=0), fresh_texts(50, seed=0)
    assert len(set(first)) == 50
    assert not set(first) & set(second)


def test_bench_coldstart_batch_loop_covers_more_clusters_when_it_carries_earlier_picks():
    import numpy as np

    from annotation.management.commands.bench_coldstart import batch_loop, coverage_figures

    # 12 blobs of very different sizes: restarting keeps returning to the big ones
    rng = np.random.default_rng(0)
    sizes = [80, 60, 40, 30, 20, 15, 12, 10, 8, 6, 5, 4]
    blob = np.repeat(np.arange(12), sizes)
    centres = rng.normal(0, 1, (12, 16)) * 5
    x = centres[blob] + rng.normal(0, 0.3, (len(blob), 16))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for strategy in ("kmeans", "votek"):
        runs = {
            carry: batch_loop(strategy, pool_x=x, batches=4, batch_size=2, carry=carry, k=20)
            for carry in (False, True)
        }
        for picked in runs[True]:
            assert len(set(picked.tolist())) == len(picked)  # never a pick twice
        covered = {
            carry: coverage_figures(runs[carry][-1], unit_x=unit, reference=blob, pool_y=blob)["clusters"]
            for carry in (False, True)
        }
        assert covered[True] > covered[False], strategy
