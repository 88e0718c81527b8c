"""prune_exports: export files of deleted snapshots (and stale temp files) go, files of live snapshots stay."""

import os
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import export_file
from evaluation.models import Snapshot
from synthstudio.models import LabelMethod, LLMAnnotation

DAY = 86400


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def two_snapshots(project, lead, samples):
    for sample in samples:
        LLMAnnotation.objects.create(
            sample=sample,
            label="positive",
            distribution={"positive": 1.0},
            confidence=0.9,
            method=LabelMethod.IMPORTED,
        )
        final_label_refresh(sample=sample)
    return [snapshot_create(project=project, user=lead, settings=FilterSettings()) for _ in range(2)]


def age(path, days):
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


def prune(*arguments) -> str:
    out = StringIO()
    call_command("prune_exports", *arguments, stdout=out)
    return out.getvalue()


def test_it_deletes_the_files_of_a_deleted_snapshot_and_keeps_the_others(two_snapshots):
    kept, deleted = two_snapshots
    kept_file, deleted_file = export_file(kept, "jsonl"), export_file(deleted, "csv")
    stale_temp = kept_file.parent / "tmpabc.part"
    stale_temp.write_text("half written")
    for path in (kept_file, deleted_file, stale_temp):
        age(path, 10)
    Snapshot.objects.filter(pk=deleted.pk).delete()
    assert "Deleted 2 unreferenced export files." in prune("--older-than-days", "7")
    assert kept_file.exists()
    assert not deleted_file.exists() and not stale_temp.exists()


def test_it_leaves_recent_files_alone(two_snapshots):
    orphan = export_file(two_snapshots[1], "jsonl")
    age(orphan, 2)
    Snapshot.objects.filter(pk=two_snapshots[1].pk).delete()
    assert "Deleted 0 unreferenced export files." in prune("--older-than-days", "7")
    assert orphan.exists()


def test_a_dry_run_lists_without_deleting(two_snapshots):
    orphan = export_file(two_snapshots[0], "jsonl")
    age(orphan, 30)
    Snapshot.objects.filter(pk=two_snapshots[0].pk).delete()
    output = prune("--older-than-days", "7", "--dry-run")
    assert str(orphan) in output and "Would delete 1 unreferenced export file." in output
    assert orphan.exists()


def test_it_refuses_a_negative_age():
    with pytest.raises(CommandError):
        prune("--older-than-days", "-1")
