"""The project's label certificate travels with a snapshot: stored on it at creation (stale when the samples or
final labels changed since it was written), shown on the snapshot and comparison pages, written into the HF
dataset card, certificate.json and every Parquet file's metadata. Without a certificate nothing is claimed."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pytest
import yaml
from django.urls import reverse
from django.utils.html import escape

from annotation.models import LabelCertificate
from annotation.review.final_labels import final_label_refresh
from annotation.routing.certificates import certificate_as_dict, final_labels_digest
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import (
    CERTIFICATE_METADATA_KEY,
    FLAT_COLUMNS,
    argilla_settings_chunks,
    csv_chunks,
    export_file,
    hf_folder_write,
    jsonl_chunks,
    labelstudio_config_xml,
)
from evaluation.models import ExportFormat
from synthstudio.models import LabelMethod, LLMAnnotation, Sample

TEXTS = [
    ("A delight from start to finish.", "positive", 0.93),
    ("Two hours I will never get back.", "negative", 0.88),
    ("The acting was superb, the score moving.", "positive", 0.61),
    ("Dull and far too long.", "negative", 0.77),
    ("Fine film.", "positive", 0.7),
    ("Mediocre at best.", "negative", 0.52),
]
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def samples(project):
    made = []
    for text, label, confidence in TEXTS:
        sample = Sample.objects.create(project=project, text=text)
        other = "negative" if label == "positive" else "positive"
        LLMAnnotation.objects.create(
            sample=sample,
            label=label,
            distribution={label: confidence, other: 1 - confidence},
            confidence=confidence,
            method=LabelMethod.IMPORTED,
            model_name="gpt-test",
        )
        final_label_refresh(sample=sample)
        made.append(sample)
    return made


def certify(project, **overrides) -> LabelCertificate:
    """A certificate over the project's current samples and final labels (what the quality-target policy
    writes when its calibration answers are in)."""
    values = dict(
        project=project,
        epsilon=0.05,
        confidence=0.95,
        threshold=0.35,
        upper_bound=0.048,
        estimated_error=0.021,
        error_ci_low=0.008,
        error_ci_high=0.044,
        item_count=Sample.objects.filter(project=project).count(),
        human_count=2,
        calibration_count=1,
        reviewer_agreement={"krippendorff_alpha": 0.81, "gold_accuracy": 0.9},
        labels_digest=final_labels_digest(project=project),
    )
    values.update(overrides)
    return LabelCertificate.objects.create(**values)


def make_snapshot(project, lead, **filters):
    return snapshot_create(
        project=project,
        user=lead,
        settings=FilterSettings(**filters),
        split_fractions={"train": 0.5, "test": 0.5},
        licence="cc-by-4.0",
    )


def relabel(sample, label):
    sample.final_label = label
    sample.save(update_fields=["final_label"])


def page(client, snapshot) -> str:
    response = client.get(reverse("evaluation:snapshot_detail", args=[snapshot.project_id, snapshot.version]))
    assert response.status_code == 200
    return response.content.decode()


def certificate_section(html: str) -> str:
    return html.split('id="label-certificate"')[1].split("</section>")[0]


def test_a_snapshot_stores_the_latest_certificate_with_the_shared_statement(project, lead, samples):
    certify(project, epsilon=0.1)
    latest = certify(project)
    snapshot = make_snapshot(project, lead)
    snapshot.refresh_from_db()
    expected = certificate_as_dict(latest, stale=False)
    assert snapshot.certificate == {**expected, "snapshot_item_count": 6}
    assert snapshot.certificate["statement"].startswith("At most 5.0% of the final labels are wrong")
    assert snapshot.certificate["stale"] is False


def test_the_snapshot_page_shows_the_statement_and_figures_escaped(lead_client, project, lead, samples):
    certify(project, reviewer_agreement={HOSTILE: 0.5})
    snapshot = make_snapshot(project, lead)
    html = page(lead_client, snapshot)
    assert 'id="label-certificate"' in html
    assert escape(snapshot.certificate["statement"]) in html
    assert "5 %" in html and "95 %" in html  # ε and 1 − α
    assert "2.1 % [0.8 %, 4.4 %]" in html  # estimated error [CI]
    assert "33.3 % (2 of 6 items" in html  # human share
    assert escape(HOSTILE) in html and HOSTILE not in html
    assert "certificate-stale" not in html and "STALE" not in html
    assert "offline" not in certificate_section(html)


def test_an_offline_certificate_is_marked_offline_on_the_page_and_in_the_card(
    lead_client, project, lead, samples, tmp_path
):
    certify(project, is_offline=True)
    snapshot = make_snapshot(project, lead)
    html = page(lead_client, snapshot)
    section = certificate_section(html)
    assert '<span class="badge offline"' in section
    assert "offline stand-in" in section
    hf_folder_write(snapshot, tmp_path / "ds")
    assert "- LLM labels: offline stand-in, not a real model." in (tmp_path / "ds" / "README.md").read_text()


def test_the_hf_export_has_the_card_section_a_certificate_json_and_parquet_metadata(project, lead, samples):
    certify(project)
    snapshot = make_snapshot(project, lead)
    path = export_file(snapshot, ExportFormat.HF)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        top = names[0].split("/")[0]
        card = archive.read(f"{top}/README.md").decode()
        stored = json.loads(archive.read(f"{top}/certificate.json"))
        train = pq.read_schema(io.BytesIO(archive.read(f"{top}/data/train.parquet")))
    assert stored == snapshot.certificate
    section = card.split("## Label certificate")[1].split("\n## ")[0]
    assert snapshot.certificate["statement"] in section
    assert "- Target error ε: 5 %" in section
    assert "- Confidence 1 − α: 95 %" in section
    assert "- Estimated error [CI]: 2.1 % [0.8 %, 4.4 %]" in section
    assert "- Reviewer agreement: gold_accuracy: 0.9; krippendorff_alpha: 0.81" in section
    assert "STALE" not in section
    assert json.loads(train.metadata[CERTIFICATE_METADATA_KEY.encode()]) == snapshot.certificate
    assert train.names == list(FLAT_COLUMNS)
    yaml.safe_load(card.split("---")[1])  # the header still parses


def test_the_hf_folder_with_a_certificate_still_loads_with_load_dataset(project, lead, samples, tmp_path):
    datasets = pytest.importorskip("datasets")
    certify(project)
    snapshot = make_snapshot(project, lead)
    hf_folder_write(snapshot, tmp_path / "ds")
    assert (tmp_path / "ds" / "certificate.json").exists()
    loaded = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf-cache"))
    assert sum(len(loaded[name]) for name in loaded) == 6
    assert list(loaded["train"].features) == list(FLAT_COLUMNS)


def test_the_parquet_export_carries_the_certificate_and_csv_columns_stay_put(project, lead, samples):
    certify(project)
    snapshot = make_snapshot(project, lead)
    schema = pq.read_schema(export_file(snapshot, ExportFormat.PARQUET))
    assert (
        json.loads(schema.metadata[CERTIFICATE_METADATA_KEY.encode()])["statement"]
        == (snapshot.certificate["statement"])
    )
    assert schema.names == list(FLAT_COLUMNS)
    header = next(csv.reader(io.StringIO(b"".join(csv_chunks(snapshot)).decode())))
    assert header == list(FLAT_COLUMNS)


def test_the_label_studio_config_and_argilla_settings_carry_it_and_row_files_do_not(project, lead, samples):
    certify(project)
    snapshot = make_snapshot(project, lead)
    xml = labelstudio_config_xml(snapshot)
    parser = ElementTree.XMLParser(target=ElementTree.TreeBuilder(insert_comments=True))
    root = ElementTree.fromstring(xml, parser=parser)
    assert root.tag == "View" and root.find("Choices") is not None
    assert root[0].text.strip() == (
        f"synthstudio label certificate of snapshot v{snapshot.version}: {snapshot.certificate['statement']}"
    )
    settings_json = json.loads(b"".join(argilla_settings_chunks(snapshot)))
    assert settings_json["synthstudio_certificate"] == snapshot.certificate
    first = json.loads(b"".join(jsonl_chunks(snapshot)).splitlines()[0])
    assert set(first) == set(FLAT_COLUMNS)  # rows stay rows: no per-row copy of the certificate


def test_a_label_change_after_the_certificate_makes_the_next_snapshot_stale(
    lead_client, project, lead, samples, tmp_path
):
    certify(project)
    before = make_snapshot(project, lead)
    relabel(samples[0], "negative")
    after = make_snapshot(project, lead)
    assert before.certificate["stale"] is False
    assert after.certificate["stale"] is True
    assert "STALE" in after.certificate["statement"]
    before.refresh_from_db()
    assert before.certificate["stale"] is False  # stored at creation: a snapshot never changes

    html = page(lead_client, after)
    assert 'id="certificate-stale"' in html
    assert escape(after.certificate["statement"]) in html
    assert 'id="certificate-stale"' not in page(lead_client, before)

    hf_folder_write(after, tmp_path / "ds")
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "**STALE**: the project's samples or final labels changed" in card

    compare = lead_client.get(
        reverse("evaluation:snapshot_compare", args=[project.id, after.version]), {"against": before.version}
    ).content.decode()
    rows = compare.split('id="certificate-compare"')[1].split("</table>")[0]
    assert escape(before.certificate["statement"]) in rows
    assert escape(after.certificate["statement"]) in rows
    assert rows.count(">STALE<") == 1


def test_a_new_sample_after_the_certificate_makes_it_stale(project, lead, samples):
    certify(project)
    Sample.objects.create(project=project, text="A late arrival.", final_label="positive")
    snapshot = make_snapshot(project, lead)
    assert snapshot.certificate["stale"] is True
    assert (
        "Certified over the project's 6 items; this snapshot holds 7 items. STALE:"
        in (snapshot.certificate["statement"])
    )


def test_a_filtered_snapshot_says_how_many_of_the_certified_items_it_holds(project, lead, samples, tmp_path):
    certify(project)
    Sample.objects.filter(pk=samples[0].pk).update(excluded_from_snapshots=True)
    snapshot = make_snapshot(project, lead)
    assert snapshot.item_count == 5
    assert snapshot.certificate["stale"] is False  # the labels are the certified ones; one is left out
    assert snapshot.certificate["statement"].endswith(
        "Certified over the project's 6 items; this snapshot holds 5 of them."
    )
    hf_folder_write(snapshot, tmp_path / "ds")
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "this snapshot holds 5 of them." in card
    assert "- Items: certified over 6; this snapshot holds 5" in card


def test_without_a_certificate_nothing_is_claimed(lead_client, project, lead, samples, tmp_path):
    snapshot = make_snapshot(project, lead)
    snapshot.refresh_from_db()
    assert snapshot.certificate == {}
    html = page(lead_client, snapshot)
    assert "Label certificate" not in html and "label-certificate" not in html
    hf_folder_write(snapshot, tmp_path / "ds")
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "certificate" not in card.lower() and "at most" not in card.lower()
    assert not (tmp_path / "ds" / "certificate.json").exists()
    metadata = pq.read_schema(tmp_path / "ds" / "data" / "train.parquet").metadata or {}
    assert CERTIFICATE_METADATA_KEY.encode() not in metadata
    assert "<!--" not in labelstudio_config_xml(snapshot)
    assert "synthstudio_certificate" not in json.loads(b"".join(argilla_settings_chunks(snapshot)))
    other = make_snapshot(project, lead)
    compare = lead_client.get(
        reverse("evaluation:snapshot_compare", args=[project.id, other.version]),
        {"against": snapshot.version},
    ).content.decode()
    assert "certificate" not in compare.lower()
