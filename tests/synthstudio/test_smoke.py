import pytest
from django.urls import reverse


def test_it_shows_the_lead_their_project(lead_client, project):
    response = lead_client.get(reverse("home"))
    assert response.status_code == 200
    assert "Film reviews" in response.content.decode()


@pytest.mark.parametrize("name", ["project_settings", "codebook_edit", "members", "sample_list"])
def test_it_forbids_annotators_lead_pages(annotator_client, project, name):
    assert annotator_client.get(reverse(name, args=[project.id])).status_code == 403


@pytest.mark.parametrize("name", ["project_detail", "codebook_detail", "project_settings", "members"])
def test_it_hides_projects_from_outsiders(outsider_client, project, name):
    assert outsider_client.get(reverse(name, args=[project.id])).status_code == 404
