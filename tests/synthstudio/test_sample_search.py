"""The samples page's search and filters (issue 14 item 10): text, final and LLM label, source, reviewed,
flagged, routed and routing reason, excluded; server-side pagination; bad values say so."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import ReviewTask, TaskKind
from synthstudio.models import FinalSource, HumanAnnotation, LLMAnnotation, Origin, Sample
from synthstudio.sample_search import NO_LABEL, SampleSearch, samples_matching


@pytest.fixture
def corpus(project, annotator):
    """Six samples, each differing from the others in the filters it should match."""
    rows = {
        "plain": Sample.objects.create(project=project, text="An ordinary review."),
        "generated": Sample.objects.create(
            project=project, text="A Generated SUPERB film.", origin=Origin.GENERATED
        ),
        "llm": Sample.objects.create(
            project=project, text="Labelled by the LLM.", final_label="negative", final_source=FinalSource.LLM
        ),
        "human": Sample.objects.create(
            project=project,
            text="Labelled by a human.",
            final_label="positive",
            final_source=FinalSource.HUMAN,
        ),
        "flagged": Sample.objects.create(project=project, text="Flagged as harmful."),
        "routed": Sample.objects.create(
            project=project, text="Routed for its entropy.", excluded_from_snapshots=True
        ),
    }
    LLMAnnotation.objects.create(sample=rows["llm"], label="negative", distribution={}, method="offline")
    LLMAnnotation.objects.create(sample=rows["human"], label="negative", distribution={}, method="offline")
    LLMAnnotation.objects.create(
        sample=rows["human"], label="positive", distribution={}, method="offline", is_current=False
    )
    HumanAnnotation.objects.create(sample=rows["human"], annotator=annotator, label="positive")
    HumanAnnotation.objects.create(sample=rows["flagged"], annotator=annotator, flag="harmful")
    ReviewTask.objects.create(
        project=project,
        sample=rows["routed"],
        kind=TaskKind.ROUTED,
        reason="student disagrees with LLM; entropy 0.91",
    )
    ReviewTask.objects.create(
        project=project, sample=rows["human"], kind=TaskKind.MANUAL, reason="sent by a lead"
    )
    return rows


def matching(project, corpus, **filters) -> set[str]:
    ids = set(samples_matching(project=project, search=SampleSearch(**filters)).values_list("pk", flat=True))
    return {name for name, sample in corpus.items() if sample.pk in ids}


@pytest.mark.parametrize(
    "filters,expected",
    [
        ({}, {"plain", "generated", "llm", "human", "flagged", "routed"}),
        ({"q": "superb"}, {"generated"}),  # case-insensitive
        ({"q": "labelled by"}, {"llm", "human"}),
        ({"label": "positive"}, {"human"}),
        ({"label": NO_LABEL}, {"plain", "generated", "flagged", "routed"}),
        ({"llm_label": "negative"}, {"llm", "human"}),  # the current LLM label only
        ({"llm_label": "positive"}, set()),
        ({"llm_label": NO_LABEL}, {"plain", "generated", "flagged", "routed"}),
        ({"origin": "generated"}, {"generated"}),
        ({"origin": "imported"}, {"plain", "llm", "human", "flagged", "routed"}),
        ({"reviewed": "yes"}, {"human"}),
        ({"reviewed": "no"}, {"plain", "generated", "llm", "flagged", "routed"}),
        ({"flagged": "yes"}, {"flagged"}),
        ({"flagged": "no"}, {"plain", "generated", "llm", "human", "routed"}),
        ({"routed": "yes"}, {"routed", "human"}),
        ({"routed": "no"}, {"plain", "generated", "llm", "flagged"}),
        ({"reason": "STUDENT disagrees"}, {"routed"}),
        ({"reason": "sent by a lead"}, {"human"}),
        ({"excluded": "yes"}, {"routed"}),
        ({"reviewed": "yes", "llm_label": "negative", "routed": "yes"}, {"human"}),
        ({"q": "labelled", "reviewed": "no"}, {"llm"}),
    ],
)
def test_each_filter_keeps_exactly_the_matching_samples(project, corpus, filters, expected):
    assert matching(project, corpus, **filters) == expected


def test_another_projects_samples_never_match(project, corpus, other_project):
    Sample.objects.create(project=other_project, text="A generated superb film in another project.")

    assert matching(project, corpus, q="superb") == {"generated"}
    assert samples_matching(project=project, search=SampleSearch(q="another project")).count() == 0


@pytest.fixture
def other_project(lead):
    from synthstudio.services import project_create

    return project_create(name="Other", user=lead)


def test_the_page_filters_and_paginates_on_the_server(lead_client, project):
    Sample.objects.bulk_create(
        [Sample(project=project, text=f"review number {i:03}", text_hash=str(i)) for i in range(120)]
    )
    url = reverse("sample_list", args=[project.id])

    first = lead_client.get(url, {"q": "NUMBER 1"})
    third = lead_client.get(url, {"q": "number", "page": 3})

    assert first.context["page"].paginator.count == 20  # 100–119 (and nothing else has "number 1")
    assert "120 sample" in lead_client.get(url, {"q": "number"}).content.decode()
    assert [s.text for s in third.context["page"]] == [f"review number {i:03}" for i in range(100, 120)]
    assert "q=number&amp;page=2" in third.content.decode()  # the pager keeps the filter


def test_the_htmx_filter_answers_with_the_table_and_the_filter_as_hidden_fields(lead_client, project, corpus):
    response = lead_client.get(
        reverse("sample_list", args=[project.id]), {"flagged": "yes", "reason": ""}, HTTP_HX_REQUEST="true"
    )

    body = response.content.decode()
    assert "<html" not in body and 'id="sample-table"' in body
    assert "Flagged as harmful." in body and "An ordinary review." not in body
    assert '<input type="hidden" name="flagged" value="yes">' in body
    assert 'name="reason"' not in body  # empty filters are not carried


def test_a_bad_filter_value_says_so_and_the_others_still_apply(lead_client, project, corpus):
    response = lead_client.get(
        reverse("sample_list", args=[project.id]), {"reviewed": "maybe", "q": "superb"}
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert [s.text for s in response.context["page"]] == ["A Generated SUPERB film."]


def test_sample_text_is_escaped_in_the_list(lead_client, project):
    Sample.objects.create(project=project, text="<script>alert(1)</script>")

    body = lead_client.get(reverse("sample_list", args=[project.id])).content.decode()

    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_annotators_cannot_open_the_sample_list(annotator_client, project):
    assert annotator_client.get(reverse("sample_list", args=[project.id])).status_code == 403
