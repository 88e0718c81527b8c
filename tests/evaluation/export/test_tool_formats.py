"""Prodigy, doccano and Argilla v2 in and out (issue 15): real-shaped files import all or nothing, and a
snapshot written in each format imports back keeping what the format can hold."""

import json

import pytest
from django.urls import reverse

from evaluation.export.labelstudio import LabelStudioImportError, labelstudio_import
from evaluation.export.writers import (
    argilla_records_chunks,
    argilla_settings_chunks,
    doccano_chunks,
    prodigy_chunks,
)
from evaluation.interchange.formats import annotator_uuid
from evaluation.interchange.labelstudio import LabelStudioMapping
from synthstudio.models import HumanAnnotation, LLMAnnotation, Sample
from tests.evaluation.export.conftest import answers_of, empty_copy


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def imported(project, records, tool):
    return labelstudio_import(project=project, tasks=records, mapping=LabelStudioMapping(tool=tool))


def lines(chunks):
    return [json.loads(line) for line in b"".join(chunks).decode().splitlines()]


# ------------------------------------------------------------------------------------------------ Prodigy

PRODIGY_DB_OUT = [
    {
        "text": "Loved it.",
        "meta": {"source": "imdb"},
        "_input_hash": -1530009927,
        "_task_hash": -340967702,
        "options": [{"id": "positive", "text": "positive"}, {"id": "negative", "text": "negative"}],
        "_view_id": "choice",
        "config": {"choice_style": "single"},
        "accept": ["positive"],
        "answer": "accept",
        "_timestamp": 1733150000,
        "_annotator_id": "reviews-arno_annotator",
        "_session_id": "reviews-arno_annotator",
    },
    {
        "text": "Loved it.",
        "_input_hash": -1530009927,
        "_task_hash": -340967702,
        "options": [{"id": "positive", "text": "positive"}, {"id": "negative", "text": "negative"}],
        "_view_id": "choice",
        "accept": ["negative"],
        "answer": "accept",
        "_timestamp": 1733150100,
        "_annotator_id": "reviews-guest",
        "_session_id": "reviews-guest",
    },
    {
        "text": "Hated it.",
        "_input_hash": 499043849,
        "_task_hash": 2003036685,
        "label": "positive",
        "score": 0.06,
        "spans": [],
        "_view_id": "classification",
        "answer": "reject",
        "_timestamp": 1733150200,
        "_annotator_id": "reviews-arno_annotator",
        "_session_id": "reviews-arno_annotator",
    },
]


def test_prodigy_db_out_groups_answers_by_text_and_counts_rejected_binary_answers(project):
    counts = imported(project, PRODIGY_DB_OUT, "prodigy")
    assert (counts["tasks"], counts["annotations"], counts["not_imported"]) == (2, 2, 1)
    loved = Sample.objects.get(project=project, text="Loved it.")
    assert sorted(loved.human_annotations.values_list("label", flat=True)) == ["negative", "positive"]
    assert sorted(loved.provenance["external_annotators"].values()) == [
        "reviews-arno_annotator",
        "reviews-guest",
    ]
    assert not HumanAnnotation.objects.filter(sample__text="Hated it.").exists()


def test_a_prodigy_label_outside_the_codebook_imports_nothing(project):
    records = [dict(PRODIGY_DB_OUT[0], accept=["sarcastic"])]
    with pytest.raises(LabelStudioImportError, match=r"Line 1: the label 'sarcastic' is not in the codebook"):
        imported(project, records, "prodigy")
    assert not Sample.objects.filter(project=project).exists()


def test_prodigy_export_then_import_keeps_annotators_the_llm_distribution_fields_and_split(
    demo_like, project, lead
):
    records = lines(prodigy_chunks(demo_like))
    assert {record.get("answer") for record in records} == {"accept", None}
    target = empty_copy(project, lead)
    counts = imported(target, records, "prodigy")
    assert (counts["tasks"], counts["duplicates"]) == (4, 0)
    originals = {sample.text: sample for sample in Sample.objects.filter(project=project)}
    for copy in Sample.objects.filter(project=target):
        original = originals[copy.text]
        # Prodigy has no ground-truth flag: an adjudication comes back as one more answer
        expected = sorted((label, user, "imported", None) for label, user, _, _ in answers_of(original))
        assert answers_of(copy) == expected
        llm, before = copy.llm_annotations.get(), original.current_llm_annotation()
        assert (llm.label, llm.distribution, llm.confidence, llm.model_name) == (
            before.label,
            before.distribution,
            before.confidence,
            before.model_name,
        )
        assert copy.fields == original.fields
        assert copy.provenance["source_provenance"] == original.provenance
        assert copy.provenance["split"] in {"train", "test"}


# ------------------------------------------------------------------------------------------------ doccano

DOCCANO_EXPORT = [
    {"id": 1, "text": "Loved it.", "label": ["positive"], "Comments": []},
    {"id": 2, "text": "Hated it.", "label": ["negative"], "Comments": [], "source": "imdb"},
    {"id": 3, "text": "Not labelled yet.", "label": [], "Comments": []},
]


def test_doccano_jsonl_imports_labels_as_human_answers_and_other_keys_as_fields(project):
    counts = imported(project, DOCCANO_EXPORT, "doccano")
    assert (counts["tasks"], counts["annotations"]) == (3, 2)
    hated = Sample.objects.get(project=project, text="Hated it.")
    assert (hated.final_label, hated.final_source, hated.fields) == ("negative", "human", {"source": "imdb"})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": 9, "text": "Meh.", "label": ["sarcastic"]}, r"Line 2 \(id 9\): the label 'sarcastic'"),
        ({"id": 9, "text": "Meh.", "label": ["positive", "negative"]}, "several labels"),
        ({"id": 9, "label": ["positive"]}, "no text under 'text'"),
    ],
)
def test_a_bad_doccano_line_imports_nothing_and_is_named(project, record, message):
    with pytest.raises(LabelStudioImportError, match=message):
        imported(project, [DOCCANO_EXPORT[0], record], "doccano")
    assert not Sample.objects.filter(project=project).exists()


def test_doccano_export_then_import_keeps_the_final_labels_fields_and_split(demo_like, project, lead):
    target = empty_copy(project, lead)
    imported(target, lines(doccano_chunks(demo_like)), "doccano")
    rows = {row.text: row for row in demo_like.items.all()}
    copies = list(Sample.objects.filter(project=target))
    assert len(copies) == len(rows)
    for copy in copies:
        row = rows[copy.text]
        labels = list(copy.human_annotations.values_list("label", flat=True))
        assert labels == ([row.label] if row.label else [])
        assert copy.fields == row.fields
        assert (copy.provenance["split"], copy.provenance["weight"]) == (row.split, row.weight)


# ------------------------------------------------------------------------------------------------ Argilla

ARNO, GUEST = "4f7b9a55-5a7e-4bb6-8d1e-7e3c2f9d1a10", "9c1e2d3f-0a4b-4c5d-8e6f-7a8b9c0d1e2f"
ARGILLA_RECORDS = [
    {
        "id": "review-1",
        "fields": {"text": "Loved it."},
        "metadata": {"source": "imdb"},
        "suggestions": {"label": {"value": "positive", "score": 0.87, "agent": "gpt-4o-mini"}},
        "responses": {
            "label": [{"value": "positive", "user_id": ARNO}, {"value": "negative", "user_id": GUEST}]
        },
        "vectors": {},
        "_server_id": "0d2c3a40-1111-4e5f-9a8b-7c6d5e4f3a2b",
    },
    {
        "id": "review-2",
        "fields": {"text": "Hated it."},
        "metadata": {},
        "suggestions": {},
        "responses": {},
        "vectors": {},
        "_server_id": "0d2c3a40-2222-4e5f-9a8b-7c6d5e4f3a2b",
    },
]


def test_argilla_records_import_responses_per_user_and_the_suggestion_with_its_score(project):
    counts = imported(project, ARGILLA_RECORDS, "argilla")
    assert (counts["tasks"], counts["annotations"], counts["predictions"]) == (2, 2, 1)
    loved = Sample.objects.get(project=project, text="Loved it.")
    assert sorted(loved.provenance["external_annotators"].values()) == [
        f"argilla user {ARNO}",
        f"argilla user {GUEST}",
    ]
    suggestion = LLMAnnotation.objects.get(sample=loved)
    assert (suggestion.label, suggestion.confidence, suggestion.model_name) == (
        "positive",
        0.87,
        "gpt-4o-mini",
    )


def test_an_argilla_record_with_several_questions_asks_which_one_holds_the_label(project):
    record = dict(
        ARGILLA_RECORDS[0],
        suggestions={},
        responses={
            "sentiment": [{"value": "positive", "user_id": ARNO}],
            "topic": [{"value": "film", "user_id": ARNO}],
        },
    )
    with pytest.raises(LabelStudioImportError, match="answers several questions"):
        imported(project, [record], "argilla")


def test_argilla_export_then_import_keeps_annotators_the_distribution_fields_and_split(
    demo_like, project, lead
):
    records = json.loads(b"".join(argilla_records_chunks(demo_like)))
    assert set(records[0]) == {
        "id",
        "fields",
        "metadata",
        "suggestions",
        "responses",
        "vectors",
        "_server_id",
    }
    response = next(record for record in records if record["responses"])["responses"]["label"][0]
    assert response["user_id"] == annotator_uuid("arno@example.org")  # Argilla wants UUIDs
    target = empty_copy(project, lead)
    imported(target, records, "argilla")
    originals = {sample.text: sample for sample in Sample.objects.filter(project=project)}
    for copy in Sample.objects.filter(project=target):
        original = originals[copy.text]
        expected = sorted((label, user, "imported", None) for label, user, _, _ in answers_of(original))
        assert answers_of(copy) == expected
        llm, before = copy.llm_annotations.get(), original.current_llm_annotation()
        assert (llm.label, llm.distribution, llm.confidence, llm.model_name) == (
            before.label,
            before.distribution,
            before.confidence,
            before.model_name,
        )
        assert copy.fields == original.fields


def test_the_argilla_settings_have_the_codebook_labels_as_a_label_question(demo_like):
    settings_json = json.loads(b"".join(argilla_settings_chunks(demo_like)))
    question = settings_json["questions"][0]
    assert (question["name"], question["settings"]["type"]) == ("label", "label_selection")
    assert [option["value"] for option in question["settings"]["options"]] == ["positive", "negative"]
    assert settings_json["fields"][0]["name"] == "text"


# ------------------------------------------------------------------------------------------------ the pages


@pytest.mark.parametrize(
    ("tool", "starts"),
    [
        ("prodigy", b'{"text"'),
        ("doccano", b'{"id"'),
        ("argilla-records", b"["),
        ("argilla-settings", b"{"),
        ("labelstudio-config", b"<View>"),
    ],
)
def test_the_lead_downloads_each_tool_file(demo_like, project, lead_client, tool, starts):
    url = reverse("evaluation:snapshot_interchange_download", args=[project.id, demo_like.version, tool])
    response = lead_client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(starts)


def test_an_unknown_tool_is_not_found(demo_like, project, lead_client):
    url = reverse("evaluation:snapshot_interchange_download", args=[project.id, demo_like.version, "nope"])
    assert lead_client.get(url).status_code == 404


def test_a_doccano_file_uploaded_on_the_import_page_is_imported(
    lead_client, project, django_capture_on_commit_callbacks
):
    import io

    upload = io.BytesIO("\n".join(json.dumps(record) for record in DOCCANO_EXPORT).encode())
    upload.name = "admin.jsonl"
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:labelstudio_import", args=[project.id]), {"file": upload, "tool": "doccano"}
        )
    assert response.status_code == 302
    assert "Imported 3 tasks from doccano JSONL" in lead_client.get(response["Location"]).content.decode()
