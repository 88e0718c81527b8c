"""Browser: the FreeAL refine loop from the UI. A lead starts a refine run from the Labelling page — with the
offline labeller, and with the local OpenAI-compatible test server as the endpoint — and the run page lists
each pass (noisy items, re-labelled, changed). Celery is eager here: the run works inside the request."""

from __future__ import annotations

import pytest

from annotation.models import LabellingRun, LabellingRunKind
from generation.models import LLMEndpoint
from generation.testing.openai_server import last_user_message
from synthstudio.models import JobStatus, LLMAnnotation
from tests.annotation.labelling.test_refine import POSITIVE, noisy_project  # noqa: F401 - the fixture
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
@pytest.mark.parametrize("labeller", ["offline", "test server"])
def test_a_lead_refines_noisy_labels_from_the_labelling_page(
    browser_page,
    live_server,
    lead,
    project,
    noisy_project,  # noqa: F811 - the imported fixture
    openai_server,
    labeller,
):
    if labeller == "test server":
        openai_server.responder = lambda body, index: (
            "A" if any(last_user_message(body).endswith(p) for p in POSITIVE) else "B"
        )
        LLMEndpoint.objects.create(
            project=project, name="local", base_url=openai_server.base_url, model="test-model", max_retries=1
        )
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/labelling/")
    form = page.locator("#refine-form")
    if labeller == "test server":
        form.locator("select[name=refine-endpoint]").select_option(label="local (test-model)")
        form.locator("select[name=refine-method]").select_option("prompt_variants")
    else:
        form.locator("select[name=refine-endpoint]").select_option("")
    form.locator("input[name=refine-samples_per_item]").fill("2")
    form.locator("input[name=refine-max_passes]").fill("2")
    form.locator("button").click(no_wait_after=True)
    page.wait_for_selector("#refine-passes", timeout=180_000)
    page.wait_for_selector(".status-succeeded, .status-failed", timeout=180_000)
    run = LabellingRun.objects.get(project=project, kind=LabellingRunKind.REFINE)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.is_offline == (labeller == "offline")
    first = run.passes[0]
    assert first["relabelled"] == first["noisy"] > 0
    assert LLMAnnotation.objects.filter(run_ref=run.run_ref).count() == sum(
        r["relabelled"] for r in run.passes
    )
    page.reload()
    rows = page.locator("#refine-passes tbody tr")
    assert rows.count() == len(run.passes)
    assert rows.first.locator("td").all_inner_texts()[:3] == [
        "1",
        str(first["noisy"]),
        str(first["relabelled"]),
    ]
    if labeller == "offline":
        assert "offline" in page.locator("main").inner_text()
    else:
        assert openai_server.request_count >= 2 * first["noisy"]
    screenshot(page, f"refine-run-{labeller.replace(' ', '-')}")
