"""Label Studio both ways (issue 15): files shaped like Label Studio 1.23's exports (the Export button's JSON
with prediction ids, the snapshot export with full predictions, JSON_MIN, CSV) and a round trip that keeps
annotators, lead times, distributions, the model, fields, split and weight."""

import json
from xml.etree import ElementTree

import pytest

from evaluation.export.labelstudio import (
    LabelStudioImportError,
    labelstudio_import,
    labelstudio_import_job_execute,
    labelstudio_import_job_start,
)
from evaluation.export.writers import labelstudio_chunks, labelstudio_config_xml
from evaluation.interchange.labelstudio import LabelStudioMapping
from synthstudio.models import (
    HumanAnnotation,
    JobStatus,
    LLMAnnotation,
    Sample,
)
from tests.evaluation.export.conftest import answers_of, empty_copy


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def ls_annotation(label, *, user=10, lead_time=3.2, control="sentiment", annotation_id=1):
    """An annotation as Label Studio 1.23 exports it."""
    return {
        "id": annotation_id,
        "completed_by": user,
        "result": [
            {
                "value": {"choices": [label]},
                "id": "aB12cD34eF",
                "from_name": control,
                "to_name": "text",
                "type": "choices",
                "origin": "manual",
            }
        ],
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-11-30T10:02:11.512Z",
        "updated_at": "2026-11-30T10:02:11.512Z",
        "draft_created_at": None,
        "lead_time": lead_time,
        "prediction": {},
        "result_count": 1,
        "unique_id": "0c7c5d8e-1b1f-4f6a-9c55-6b0f6f0e9a1b",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "task": 7,
        "project": 3,
        "updated_by": user if isinstance(user, int) else None,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def ls_task(task_id, data, *, annotations=(), predictions=()):
    return {
        "id": task_id,
        "annotations": list(annotations),
        "file_upload": "reviews.json",
        "drafts": [],
        "predictions": list(predictions),
        "data": data,
        "meta": {},
        "created_at": "2026-11-30T09:58:00.000Z",
        "updated_at": "2026-11-30T10:02:11.600Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "cancelled_annotations": 0,
        "total_predictions": len(predictions),
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": 3,
        "updated_by": 10,
        "comment_authors": [],
    }


def ls_prediction(label, score, model="gpt-4o-mini"):
    """A full prediction object, as in the snapshot export (POST /api/projects/{id}/exports/)."""
    return {
        "id": 102,
        "result": [
            {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
        ],
        "model_version": model,
        "created_ago": "2 hours",
        "score": score,
        "cluster": None,
        "neighbors": None,
        "mislabeling": 0.0,
        "created_at": "2026-11-30T08:00:00.000Z",
        "updated_at": "2026-11-30T08:00:00.000Z",
        "model": None,
        "model_run": None,
        "task": 7,
        "project": 3,
    }


# ------------------------------------------------------------------------------- defects 1-4 and 7


def test_predictions_listed_as_ids_only_are_refused_with_the_export_to_use(project):
    tasks = [ls_task(7, {"text": "Loved it."}, annotations=[ls_annotation("positive")], predictions=[102])]
    with pytest.raises(
        LabelStudioImportError, match=r"Task 1 \(id 7\) lists its predictions as ids only"
    ) as error:
        labelstudio_import(project=project, tasks=tasks)
    assert "POST /api/projects/<id>/exports/" in str(error.value)
    assert not Sample.objects.filter(project=project).exists()


def test_predictions_listed_as_ids_can_be_left_out_on_purpose_and_are_counted(project):
    tasks = [
        ls_task(7, {"text": "Loved it."}, annotations=[ls_annotation("positive")], predictions=[102, 103])
    ]
    counts = labelstudio_import(
        project=project, tasks=tasks, mapping=LabelStudioMapping(skip_prediction_ids=True)
    )
    assert (counts["tasks"], counts["annotations"], counts["predictions"]) == (1, 1, 0)
    assert counts["prediction_ids_skipped"] == 2


def test_full_predictions_keep_the_model_and_score_without_inventing_a_distribution(project):
    tasks = [ls_task(7, {"text": "Loved it."}, predictions=[ls_prediction("positive", 0.83)])]
    labelstudio_import(project=project, tasks=tasks)
    prediction = LLMAnnotation.objects.get(sample__project=project)
    assert (prediction.label, prediction.confidence, prediction.model_name) == (
        "positive",
        0.83,
        "gpt-4o-mini",
    )
    assert prediction.distribution == {}  # Label Studio has only the score: the rest is not made up


@pytest.mark.parametrize(
    "data",
    [
        {"split": "test", "sentence": "A fine film."},
        {"lang": "en", "sentence": "A fine film."},
    ],
)
def test_a_task_without_data_text_is_refused_listing_its_keys(project, data):
    with pytest.raises(LabelStudioImportError, match="has no `text` key") as error:
        labelstudio_import(project=project, tasks=[ls_task(7, data)])
    assert ", ".join(data) in str(error.value)
    assert not Sample.objects.filter(project=project).exists()


def test_the_chosen_text_key_gives_the_text_and_the_other_keys_become_fields(project):
    tasks = [
        ls_task(7, {"lang": "en", "sentence": "A fine film.", "split": "test"}),
        ls_task(8, {"lang": "de", "sentence": "Ein schlechter Film.", "split": "train"}),
    ]
    labelstudio_import(project=project, tasks=tasks, mapping=LabelStudioMapping(text_key="sentence"))
    samples = list(Sample.objects.filter(project=project).order_by("id"))
    assert [sample.text for sample in samples] == ["A fine film.", "Ein schlechter Film."]
    assert [sample.fields for sample in samples] == [{"lang": "en"}, {"lang": "de"}]
    assert [sample.provenance["split"] for sample in samples] == ["test", "train"]


def test_a_human_label_outside_the_codebook_imports_nothing_and_names_the_task(project):
    tasks = [
        ls_task(7, {"text": "Loved it."}, annotations=[ls_annotation("positive")]),
        ls_task(8, {"text": "Oh great, another sequel."}, annotations=[ls_annotation("sarcastic")]),
    ]
    with pytest.raises(LabelStudioImportError, match=r"Task 2 \(id 8\).*'sarcastic' is not in the codebook"):
        labelstudio_import(project=project, tasks=tasks)
    assert not Sample.objects.filter(project=project).exists()


def test_labels_are_matched_to_the_codebook_spelling(project):
    labelstudio_import(
        project=project, tasks=[ls_task(7, {"text": "Loved it."}, annotations=[ls_annotation("Positive")])]
    )
    assert HumanAnnotation.objects.get(sample__project=project).label == "positive"


def test_importing_the_same_file_twice_skips_the_duplicates_and_counts_them(project):
    tasks = [
        ls_task(7, {"text": "Loved it."}),
        ls_task(8, {"text": "Hated it."}),
        ls_task(9, {"text": "Loved it."}),
    ]
    first = labelstudio_import(project=project, tasks=tasks)
    second = labelstudio_import(project=project, tasks=tasks)
    assert (first["tasks"], first["duplicates"]) == (2, 1)
    assert (second["tasks"], second["duplicates"]) == (0, 3)
    assert Sample.objects.filter(project=project).count() == 2


JSON_MIN = [
    {
        "text": "Loved it.",
        "id": 7,
        "sentiment": "positive",
        "annotator": "arno@example.org",
        "annotation_id": 1,
        "created_at": "2026-11-30T10:02:11.512Z",
        "updated_at": "2026-11-30T10:02:11.512Z",
        "lead_time": 3.2,
    },
    {
        "text": "Loved it.",
        "id": 7,
        "sentiment": "negative",
        "annotator": "guest@partner.example",
        "annotation_id": 2,
        "created_at": "2026-11-30T10:03:11.512Z",
        "updated_at": "2026-11-30T10:03:11.512Z",
        "lead_time": 5.0,
    },
    {
        "text": "Hated it.",
        "id": 8,
        "sentiment": "negative",
        "annotator": "arno@example.org",
        "annotation_id": 3,
        "created_at": "2026-11-30T10:04:11.512Z",
        "updated_at": "2026-11-30T10:04:11.512Z",
        "lead_time": 1.5,
    },
]


def test_json_min_groups_annotations_by_task_and_keeps_each_annotator(project, annotator):
    annotator.email = "arno@example.org"
    annotator.save()
    counts = labelstudio_import(project=project, tasks=JSON_MIN)
    assert (counts["tasks"], counts["annotations"]) == (2, 3)
    assert (counts["annotators_matched"], counts["annotators_external"]) == (2, 1)
    loved = Sample.objects.get(project=project, text="Loved it.")
    answers = list(
        loved.human_annotations.order_by("id").values_list("label", "annotator_id", "seconds_spent")
    )
    assert answers == [("positive", annotator.id, 3.2), ("negative", None, 5.0)]
    unknown = loved.human_annotations.get(annotator=None)
    assert loved.provenance["external_annotators"] == {str(unknown.id): "guest@partner.example"}
    assert loved.final_source == "llm" or loved.final_label == ""  # a 1-1 tie waits for adjudication


def test_json_min_with_a_label_outside_the_codebook_names_the_record(project):
    records = [dict(JSON_MIN[0]), dict(JSON_MIN[2], sentiment="sarcastic")]
    with pytest.raises(LabelStudioImportError, match=r"Record 2 \(task id 8\).*'sarcastic'"):
        labelstudio_import(project=project, tasks=records)


LS_CSV = (
    "annotation_id,annotator,created_at,id,lead_time,sentiment,text,updated_at\n"
    "1,arno@example.org,2026-11-30T10:02:11.512Z,7,3.2,positive,Loved it.,2026-11-30T10:02:11.512Z\n"
    "2,guest@partner.example,2026-11-30T10:03:11.512Z,7,5.0,negative,Loved it.,2026-11-30T10:03:11.512Z\n"
    '3,arno@example.org,2026-11-30T10:04:11.512Z,8,1.5,negative,"Hated it, truly.",2026-11-30T10:04:11.512Z\n'
)


def test_a_label_studio_csv_export_imports_through_the_job(project, lead, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("project-3-at-2026-11-30.csv", LS_CSV.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=False):
        job = labelstudio_import_job_start(project=project, user=lead, upload=upload)
    job = labelstudio_import_job_execute(job=job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert "from Label Studio CSV" in job.message
    assert (job.counts["tasks"], job.counts["annotations"]) == (2, 3)
    assert Sample.objects.get(project=project, text="Hated it, truly.").final_label == "negative"


def test_an_export_that_is_not_json_names_the_formats_that_can_be_imported(project, lead):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("export.json", b"id\ttext\n1\thello\n")
    job = labelstudio_import_job_execute(
        job=labelstudio_import_job_start(project=project, user=lead, upload=upload)
    )
    assert job.status == JobStatus.FAILED
    assert "JSON, JSON_MIN and CSV" in job.error


# ------------------------------------------------------------------------------- defects 5-6: the round trip


def test_the_export_has_one_annotation_per_answer_the_real_model_and_the_distribution(demo_like):
    tasks = {task["data"]["text"]: task for task in json.loads(b"".join(labelstudio_chunks(demo_like)))}
    task = tasks["Two hours I will never get back."]
    assert [a["result"][0]["value"]["choices"] for a in task["annotations"]] == [["negative"], ["positive"]]
    assert task["annotations"][0]["completed_by"] == {"email": "arno@example.org"}
    assert "completed_by" not in task["annotations"][1]  # no email: Label Studio could not match it
    assert task["annotations"][1]["lead_time"] == 4.5
    assert task["meta"]["synthstudio"]["answers"][1]["annotator"] == "berit_annotator"
    assert task["predictions"][0]["model_version"] == "qwen2.5-7b-instruct"
    assert task["predictions"][0]["score"] == 0.8
    assert task["meta"]["synthstudio"]["prediction"]["distribution"] == {"positive": 0.2, "negative": 0.8}
    assert task["data"]["fields"] == {"source": "imdb", "year": 2019}
    assert task["meta"]["synthstudio"]["provenance"] == {"run": "generation:4"}
    adjudicated = tasks["The acting was superb."]["annotations"]
    assert [a["ground_truth"] for a in adjudicated] == [False, False, True]


def test_the_labeling_config_matches_the_control_names_in_every_task(demo_like):
    root = ElementTree.fromstring(labelstudio_config_xml(demo_like))
    text, choices = root.find("Text"), root.find("Choices")
    assert (text.get("name"), text.get("value")) == ("text", "$text")
    assert choices.get("toName") == text.get("name")
    assert [choice.get("value") for choice in choices.findall("Choice")] == ["positive", "negative"]
    for task in json.loads(b"".join(labelstudio_chunks(demo_like))):
        for entry in task["annotations"] + task["predictions"]:
            region = entry["result"][0]
            assert (region["from_name"], region["to_name"]) == (choices.get("name"), text.get("name"))
        assert text.get("value")[1:] in task["data"]


def test_the_labeling_config_carries_the_codebook_hotkeys(demo_like):
    demo_like.codebook.labels.filter(name="positive").update(hotkey="p")
    choices = ElementTree.fromstring(labelstudio_config_xml(demo_like)).find("Choices")
    assert {c.get("value"): c.get("hotkey") for c in choices.findall("Choice")}["positive"] == "p"


def test_synthstudio_to_label_studio_to_synthstudio_loses_nothing_both_sides_keep(demo_like, project, lead):
    tasks = json.loads(b"".join(labelstudio_chunks(demo_like)))
    target = empty_copy(project, lead)
    counts = labelstudio_import(project=target, tasks=tasks)
    assert (counts["tasks"], counts["duplicates"]) == (4, 0)

    def answers(sample):
        return sorted(
            (row.label, row.annotator.username if row.annotator else "", row.source, row.seconds_spent)
            for row in sample.human_annotations.select_related("annotator")
        )

    originals = {sample.text: sample for sample in Sample.objects.filter(project=project)}
    rows = {row.sample_ref: row for row in demo_like.items.all()}
    for copy in Sample.objects.filter(project=target):
        original = originals[copy.text]
        imported = answers(copy)
        expected = [
            (label, user, "imported" if source == "review" else source, seconds)
            for label, user, source, seconds in answers(original)
        ]
        assert imported == sorted(expected)
        llm, before = copy.llm_annotations.get(), original.current_llm_annotation()
        assert (llm.label, llm.distribution, llm.confidence, llm.model_name) == (
            before.label,
            before.distribution,
            before.confidence,
            before.model_name,
        )
        assert copy.fields == original.fields
        assert copy.provenance["source_provenance"] == original.provenance
        row = rows[original.id]
        assert (copy.provenance["split"], copy.provenance["weight"]) == (row.split, row.weight)
        assert (copy.final_label, copy.final_source) == (original.final_label, original.final_source)


# ------------------------------------------------------------------------------- the mapping step on the page


def test_the_upload_page_lists_the_keys_and_the_first_tasks_when_data_has_no_text(
    lead_client, project, django_capture_on_commit_callbacks
):
    import io

    from django.urls import reverse

    tasks = [ls_task(7, {"lang": "en", "sentence": "A <b>fine</b> film."})]
    upload = io.BytesIO(json.dumps(tasks).encode())
    upload.name = "export.json"
    url = reverse("evaluation:labelstudio_import", args=[project.id])
    page = lead_client.post(url, {"file": upload}).content.decode()
    assert "has no `text` key in `data`; its keys are: lang, sentence" in page
    assert "<code>sentence</code>" in page and "&lt;b&gt;fine&lt;/b&gt;" in page  # escaped
    assert not Sample.objects.filter(project=project).exists()

    upload = io.BytesIO(json.dumps(tasks).encode())
    upload.name = "export.json"
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(url, {"file": upload, "text_key": "sentence"})
    assert response.status_code == 302
    assert Sample.objects.get(project=project).text == "A <b>fine</b> film."


def test_the_demo_survives_label_studio_and_back(db, settings, tmp_path):
    """The issue's check on the real demo: every answer with its annotator, every LLM distribution and model,
    fields, provenance and final label come back (there, 100 of 101 distributions changed)."""
    import io

    from django.core.management import call_command

    from evaluation.models import Snapshot

    settings.VAR_DIR = tmp_path
    call_command("demo", stdout=io.StringIO())
    snapshot = Snapshot.objects.ready().latest("created_at")
    project = snapshot.project
    target = empty_copy(project, project.created_by)
    tasks = json.loads(b"".join(labelstudio_chunks(snapshot)))
    counts = labelstudio_import(project=target, tasks=tasks)
    assert (counts["tasks"], counts["duplicates"]) == (snapshot.item_count, 0)
    copies = {sample.text: sample for sample in Sample.objects.filter(project=target)}
    compared = with_distribution = 0
    for item in snapshot.items.select_related("sample"):
        original, copy = item.sample, copies[item.text]
        expected = [
            (label, user, "imported" if source == "review" else source, seconds)
            for label, user, source, seconds in answers_of(original)
        ]
        assert answers_of(copy) == sorted(expected), item.text
        before = original.current_llm_annotation()
        if before is not None:
            llm = copy.llm_annotations.get(is_current=True)
            assert (llm.label, llm.distribution, llm.confidence, llm.model_name) == (
                before.label,
                before.distribution,
                before.confidence,
                before.model_name,
            )
            with_distribution += bool(llm.distribution)
        assert copy.fields == original.fields
        assert copy.provenance["source_provenance"] == original.provenance
        assert (copy.final_label, copy.final_source) == (original.final_label, original.final_source), (
            item.text
        )
        compared += 1
    assert compared == snapshot.item_count > 50 and with_distribution > 50
