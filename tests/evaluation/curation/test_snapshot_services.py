"""Snapshots: what they keep, what they record, immutability and diffs."""

import pytest

from annotation.review.final_labels import LABEL_POLICY, final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create, snapshot_diff, snapshot_rows
from evaluation.export.writers import export_file, jsonl_chunks
from synthstudio.models import FlagReason, HumanAnnotation, HumanSource, LabelMethod, LLMAnnotation, Sample


def llm_label(sample, label, confidence, *, current=True, run="labelling:1"):
    other = "negative" if label == "positive" else "positive"
    LLMAnnotation.objects.create(
        sample=sample,
        label=label,
        distribution={label: confidence, other: 1 - confidence},
        confidence=confidence,
        method=LabelMethod.IMPORTED,
        is_current=current,
        run_ref=run,
    )
    final_label_refresh(sample=sample)


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def labelled(project, samples, annotator):
    """4 seed samples: LLM labels (one low-confidence), one human correction, one duplicate, one flagged."""
    llm_label(samples[0], "positive", 0.95)
    llm_label(samples[1], "negative", 0.9)
    llm_label(samples[2], "positive", 0.55)
    llm_label(samples[3], "positive", 0.8)
    HumanAnnotation.objects.create(
        sample=samples[3], annotator=annotator, label="negative", source=HumanSource.REVIEW
    )
    final_label_refresh(sample=samples[3])
    duplicate = Sample.objects.create(project=project, text="a delight from  start to finish.")
    llm_label(duplicate, "positive", 0.9)
    flagged = Sample.objects.create(project=project, text="Buy cheap pills now.")
    llm_label(flagged, "negative", 0.9)
    HumanAnnotation.objects.create(sample=flagged, annotator=annotator, flag=FlagReason.OFF_TOPIC)
    Sample.objects.create(project=project, text="Never labelled.")
    return [*samples, duplicate, flagged]


def test_a_snapshot_keeps_the_items_passing_the_filters_with_final_labels_and_weights(
    project, lead, labelled
):
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings(min_confidence=0.6))
    rows = {row["sample_ref"]: row for row in snapshot_rows(snapshot)}
    assert set(rows) == {labelled[0].id, labelled[1].id, labelled[3].id}
    assert (rows[labelled[3].id]["label"], rows[labelled[3].id]["label_source"]) == ("negative", "human")
    assert rows[labelled[0].id]["weight"] == 0.95
    assert rows[labelled[3].id]["llm_label"] == "positive"
    assert snapshot.removed_counts == {
        "unlabelled": 1,
        "exact_duplicates": 1,
        "near_duplicates": 0,
        "judge_score": 0,
        "confidence": 1,
        "consistency": 0,
        "flagged": 1,
        "excluded": 0,
        "length": 0,
        "format": 0,
    }


def test_a_snapshot_records_its_filters_label_policy_and_codebook_version(project, lead, labelled):
    settings = FilterSettings(min_chars=5, must_not_match="pills")
    snapshot = snapshot_create(project=project, user=lead, settings=settings, note="first cut")
    assert FilterSettings.from_dict(snapshot.filter_settings) == settings
    assert snapshot.label_policy == LABEL_POLICY
    assert snapshot.codebook_version == project.codebook.version
    assert snapshot.label_names == ["positive", "negative"]
    assert (snapshot.version, snapshot.item_count) == (1, 4)
    assert snapshot.label_counts == {"positive": 2, "negative": 2}


def test_editing_labels_later_changes_neither_the_snapshot_nor_its_exports(
    project, lead, annotator, labelled
):
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    before_rows = list(snapshot_rows(snapshot))
    before_export = b"".join(jsonl_chunks(snapshot))
    parquet_before = export_file(snapshot, "parquet").read_bytes()
    HumanAnnotation.objects.create(
        sample=labelled[0], annotator=annotator, label="negative", source=HumanSource.REVIEW
    )
    final_label_refresh(sample=labelled[0])
    Sample.objects.filter(pk=labelled[1].pk).update(text="edited text")
    labelled[2].delete()
    assert list(snapshot_rows(snapshot)) == before_rows
    assert b"".join(jsonl_chunks(snapshot)) == before_export
    assert export_file(snapshot, "parquet").read_bytes() == parquet_before
    later = snapshot_create(project=project, user=lead, settings=FilterSettings())
    assert {row["label"] for row in snapshot_rows(later) if row["sample_ref"] == labelled[0].id} == {
        "negative"
    }


def test_the_diff_lists_added_removed_and_relabelled_items(project, lead, annotator, labelled):
    first = snapshot_create(project=project, user=lead, settings=FilterSettings(min_confidence=0.6))
    HumanAnnotation.objects.create(
        sample=labelled[0], annotator=annotator, label="negative", source=HumanSource.REVIEW
    )
    final_label_refresh(sample=labelled[0])
    second = snapshot_create(project=project, user=lead, settings=FilterSettings(must_not_match="hours"))
    diff = snapshot_diff(old=first, new=second)
    assert [item["sample_id"] for item in diff.added] == [labelled[2].id]
    assert [item["sample_id"] for item in diff.removed] == [labelled[1].id]
    assert [(item["sample_id"], item["old_label"], item["new_label"]) for item in diff.relabelled] == [
        (labelled[0].id, "positive", "negative")
    ]
    assert second.version == first.version + 1


def test_the_split_is_stratified_and_stored_with_each_row(project, lead):
    for i in range(10):
        sample = Sample.objects.create(project=project, text=f"review number {i}")
        llm_label(sample, "positive" if i % 2 else "negative", 0.9)
    snapshot = snapshot_create(
        project=project,
        user=lead,
        settings=FilterSettings(),
        split_fractions={"train": 0.6, "validation": 0.2, "test": 0.2},
    )
    rows = list(snapshot_rows(snapshot))
    per_split = {
        name: [row["label"] for row in rows if row["split"] == name]
        for name in ("train", "validation", "test")
    }
    assert {name: len(labels) for name, labels in per_split.items()} == {
        "train": 6,
        "validation": 2,
        "test": 2,
    }
    assert all(labels.count("positive") == labels.count("negative") for labels in per_split.values())
    assert snapshot.stats["splits"] == {"train": 6, "validation": 2, "test": 2}


def test_labels_that_differ_across_runs_fail_the_consistency_filter(project, lead, labelled):
    llm_label(labelled[0], "negative", 0.6, current=False, run="labelling:2")
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings(require_consistency=True))
    assert labelled[0].id not in {row["sample_ref"] for row in snapshot_rows(snapshot)}
    assert snapshot.removed_counts["consistency"] == 1


def test_agreement_is_recorded_when_items_have_two_human_labels(project, lead, annotator, labelled):
    HumanAnnotation.objects.create(
        sample=labelled[3], annotator=lead, label="negative", source=HumanSource.REVIEW
    )
    HumanAnnotation.objects.create(
        sample=labelled[0], annotator=lead, label="positive", source=HumanSource.REVIEW
    )
    HumanAnnotation.objects.create(
        sample=labelled[0], annotator=annotator, label="positive", source=HumanSource.REVIEW
    )
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    assert snapshot.stats["agreement"] == {"krippendorff_alpha": 1.0, "items_multiply_labelled": 2}


def test_the_judge_filter_uses_the_newest_judge_rating_of_each_sample(project, lead, labelled):
    from evaluation.models import JudgeKind, JudgeRating, JudgeRun

    older = JudgeRun.objects.create(
        project=project, kind=JudgeKind.RATING, base_url="http://judge", model_name="j"
    )
    newer = JudgeRun.objects.create(
        project=project, kind=JudgeKind.RATING, base_url="http://judge", model_name="j"
    )
    JudgeRating.objects.create(run=older, sample=labelled[0], rating="D")
    JudgeRating.objects.create(run=newer, sample=labelled[0], rating="A")  # re-judged: now kept
    JudgeRating.objects.create(run=older, sample=labelled[1], rating="C")
    JudgeRating.objects.create(run=newer, sample=labelled[2], rating="")  # no verdict: unrated, kept
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings(min_judge_score=3.0))
    kept = {row["sample_ref"] for row in snapshot_rows(snapshot)}
    assert labelled[0].id in kept and labelled[2].id in kept
    assert labelled[1].id not in kept
    assert snapshot.removed_counts["judge_score"] == 1
