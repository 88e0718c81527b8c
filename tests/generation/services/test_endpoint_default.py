"""One rule for which endpoint an LLM form or run starts from (generation configs, labelling runs, judge runs):
the project's own endpoint, else the environment's (LLM_BASE_URL), offline only when there is none — and a
judge run with no endpoint chosen follows it instead of falling back to LLM_BASE_URL over the project's."""

from __future__ import annotations

from annotation.forms import LabellingRunForm
from evaluation.models import JudgeKind
from evaluation.preferences.judges import judge_run_start
from generation.forms import GenerationConfigForm
from generation.models import LLMEndpoint
from generation.services.endpoints import ENVIRONMENT_ENDPOINT_NAME, endpoint_default_for


def own_endpoint(project) -> LLMEndpoint:
    return LLMEndpoint.objects.create(
        project=project, name="team vLLM", base_url="http://127.0.0.1:9/v1", model="team-model"
    )


def test_without_any_endpoint_the_forms_start_offline(project, settings):
    settings.LLM_BASE_URL = ""
    assert endpoint_default_for(project=project) is None
    assert LabellingRunForm(project=project)["endpoint"].initial is None
    assert GenerationConfigForm(project=project)["endpoint"].initial is None


def test_the_projects_endpoint_is_the_default_of_both_forms(project, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:8/v1"
    endpoint = own_endpoint(project)
    assert endpoint_default_for(project=project) == endpoint
    assert LabellingRunForm(project=project)["endpoint"].initial == endpoint
    assert GenerationConfigForm(project=project)["endpoint"].initial == endpoint
    assert f'<option value="{endpoint.pk}" selected>' in str(LabellingRunForm(project=project)["endpoint"])


def test_the_environments_endpoint_is_the_default_without_a_project_one(project, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:8/v1"
    default = endpoint_default_for(project=project)
    assert default is not None and default.name == ENVIRONMENT_ENDPOINT_NAME and default.from_environment
    assert LabellingRunForm(project=project)["endpoint"].initial == default


def test_editing_an_offline_config_keeps_it_offline(project, settings):
    own_endpoint(project)
    form = GenerationConfigForm(project=project, initial={"endpoint": None, "name": "old"})
    assert form["endpoint"].initial is None


def test_a_judge_run_without_a_chosen_endpoint_uses_the_projects_not_llm_base_url(project, lead, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:8/v1"
    endpoint = own_endpoint(project)
    run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=None, limit=1)
    assert (run.endpoint, run.base_url, run.model_name, run.is_offline) == (
        endpoint,
        "http://127.0.0.1:9/v1",
        "team-model",
        False,
    )


def test_a_judge_run_is_offline_only_without_any_endpoint(project, lead, settings):
    settings.LLM_BASE_URL = ""
    run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=None, limit=1)
    assert run.is_offline and run.endpoint is None


def test_the_judge_form_preselects_the_default_endpoint(lead_client, project, settings):
    settings.LLM_BASE_URL = ""
    endpoint = own_endpoint(project)
    body = lead_client.get(f"/projects/{project.id}/evaluation/preferences/").content.decode()
    assert f'<option value="{endpoint.pk}" selected>team vLLM (team-model)</option>' in body
    assert "environment default" not in body


def test_the_readme_says_the_demo_is_offline_whatever_llm_base_url_says():
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[3] / "README.md").read_text().split())
    assert "The demo's runs always use the offline providers, with or without `LLM_BASE_URL`" in readme
    assert "Without `LLM_BASE_URL` all of this comes from the offline providers" not in readme
