"""Importing pairwise judgments (generic files and the PandaLM test-set shape) and the leaderboard they feed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from evaluation.dashboards import metrics
from evaluation.models import PairChoice, PairwiseItem, PairwiseJudgment, PairwiseRater, RaterKind
from evaluation.preferences.files import PairwiseFileError, parse_pairwise_file
from evaluation.preferences.services import pairwise_import, pairwise_summary

# Same shape as ../shared/data/pandalm_testset.json: response1 comes from the first model of cmp_key;
# annotator values 0 = tie, 1 = response1 better, 2 = response2 better.
PANDALM_ROWS = [
    {"idx": 0, "motivation_app": "Grammarly", "cmp_key": "alpha-7b_beta-7b", "instruction": "Shorten the sentence.",
     "input": "It is the case that the cat sat.", "response1": "The cat sat.", "response2": "Cat.",
     "annotator1": 1, "annotator2": 1, "annotator3": 0},
    {"idx": 1, "motivation_app": "Mail", "cmp_key": "beta-7b_gamma-6.9b", "instruction": "Say hello.", "input": "",
     "response1": "Hello!", "response2": "Goodbye.", "annotator1": 1, "annotator2": 1, "annotator3": 1},
    {"idx": 2, "motivation_app": "Mail", "cmp_key": "alpha-7b_gamma-6.9b", "instruction": "Add 2 and 2.", "input": "",
     "response1": "4", "response2": "5", "annotator1": 1, "annotator2": 2, "annotator3": 1},
    {"idx": 3, "motivation_app": "Docs", "cmp_key": "gamma-6.9b_alpha-7b", "instruction": "Name a colour.", "input": "",
     "response1": "Loud", "response2": "Blue", "annotator1": 2, "annotator2": 2, "annotator3": 2},
    {"idx": 4, "motivation_app": "Docs", "cmp_key": "beta-7b_alpha-7b", "instruction": "Spell cat.", "input": "",
     "response1": "kat", "response2": "cat", "annotator1": 2, "annotator2": 0, "annotator3": 2},
]  # fmt: skip


def pandalm_bytes() -> bytes:
    return json.dumps(PANDALM_ROWS).encode()


def test_it_reads_the_pandalm_shape_with_sources_from_cmp_key():
    records = parse_pairwise_file(pandalm_bytes(), "pandalm_testset.json")
    first = records[0]
    assert (first.source_a, first.source_b) == ("alpha-7b", "beta-7b")
    assert first.prompt == "Shorten the sentence.\n\nIt is the case that the cat sat."
    assert first.judgments == [("annotator1", "a"), ("annotator2", "a"), ("annotator3", "tie")]
    assert records[3].judgments == [("annotator1", "b"), ("annotator2", "b"), ("annotator3", "b")]
    assert records[1].prompt == "Say hello."


def test_it_imports_pandalm_pairs_with_pseudo_annotators_that_cannot_log_in(project):
    records = parse_pairwise_file(pandalm_bytes(), "pandalm_testset.json")
    result = pairwise_import(project=project, records=records, batch="pandalm_testset.json")
    assert result == {"pairs": 5, "judgments": 15, "raters": 3}
    raters = PairwiseRater.objects.filter(project=project)
    assert sorted(raters.values_list("name", flat=True)) == ["annotator1", "annotator2", "annotator3"]
    assert all(r.kind == RaterKind.IMPORTED and r.user is None for r in raters)
    item = PairwiseItem.objects.get(project=project, external_id="4")
    choices = dict(PairwiseJudgment.objects.filter(item=item).values_list("rater__name", "choice"))
    assert choices == {"annotator1": PairChoice.B, "annotator2": PairChoice.TIE, "annotator3": PairChoice.B}


def test_it_reads_a_generic_csv_with_one_row_per_judgment():
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, ["prompt", "response_a", "response_b", "annotator", "choice", "source_a", "source_b"]
    )
    writer.writeheader()
    writer.writerow(
        {
            "prompt": "p",
            "response_a": "x",
            "response_b": "y",
            "annotator": "ann",
            "choice": "A",
            "source_a": "m1",
            "source_b": "m2",
        }
    )
    writer.writerow(
        {
            "prompt": "p",
            "response_a": "x",
            "response_b": "y",
            "annotator": "bob",
            "choice": "tie",
            "source_a": "m1",
            "source_b": "m2",
        }
    )
    records = parse_pairwise_file(buffer.getvalue().encode(), "judgments.csv")
    assert len(records) == 1
    assert records[0].judgments == [("ann", "a"), ("bob", "tie")]


def test_it_rejects_an_unknown_choice_naming_the_row():
    rows = [{"prompt": "p", "response_a": "x", "response_b": "y", "annotator": "a", "choice": "maybe"}]
    with pytest.raises(PairwiseFileError, match="row 1"):
        parse_pairwise_file(json.dumps(rows).encode(), "j.json")


def test_the_leaderboard_ranks_models_and_reports_rater_agreement_like_statsmodels(project):
    pairwise_import(project=project, records=parse_pairwise_file(pandalm_bytes(), "p.json"), batch="p.json")
    summary = pairwise_summary(project=project)
    board = {row["player"]: row for row in summary["leaderboard"]}
    assert set(board) == {"alpha-7b", "beta-7b", "gamma-6.9b"}
    for row in board.values():
        assert row["elo_low"] <= row["elo"] <= row["elo_high"]
        assert row["bt_low"] <= row["bt"] <= row["bt_high"]
    # alpha wins 2 of 3 + tie on pair 0 and wins pairs 2, 3, 4 outright: it leads both ratings
    assert summary["leaderboard"][0]["player"] == "alpha-7b"
    table = metrics.category_counts(
        [[r[n] for n in ("annotator1", "annotator2", "annotator3")] for r in PANDALM_ROWS], [0, 1, 2]
    )
    assert summary["agreement"]["fleiss"] == pytest.approx(
        statsmodels_fleiss_kappa(table, method="fleiss"), abs=1e-9
    )
    assert summary["agreement"]["krippendorff"] is not None


def test_it_imports_through_the_page_as_lead(lead_client, project):
    upload = SimpleUploadedFile("pandalm_testset.json", pandalm_bytes(), content_type="application/json")
    response = lead_client.post(f"/projects/{project.id}/evaluation/preferences/import/", {"file": upload})
    assert response.status_code == 302
    assert PairwiseJudgment.objects.filter(item__project=project).count() == 15


def test_it_shows_the_import_error_for_a_bad_file(lead_client, project):
    upload = SimpleUploadedFile("bad.json", b"{not json", content_type="application/json")
    response = lead_client.post(
        f"/projects/{project.id}/evaluation/preferences/import/", {"file": upload}, follow=True
    )
    assert "Could not import bad.json" in response.content.decode()
    assert not PairwiseItem.objects.filter(project=project).exists()


def test_it_forbids_the_import_page_to_annotators(annotator_client, project):
    assert annotator_client.get(f"/projects/{project.id}/evaluation/preferences/import/").status_code == 403


def test_it_hides_the_import_page_from_outsiders(outsider_client, project):
    assert outsider_client.get(f"/projects/{project.id}/evaluation/preferences/import/").status_code == 404


def test_the_import_command_reads_a_file_into_a_project(project, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "pandalm_testset.json"
    path.write_bytes(pandalm_bytes())
    out = io.StringIO()
    call_command("import_pairwise", str(path), project=project.id, stdout=out)
    assert "Imported 5 pairs with 15 judgments from 3 annotators" in out.getvalue()


@pytest.mark.django_db
def test_the_import_command_refuses_an_unknown_project(tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "p.json"
    path.write_bytes(pandalm_bytes())
    with pytest.raises(CommandError, match="No project"):
        call_command("import_pairwise", str(path), project=999_999)
