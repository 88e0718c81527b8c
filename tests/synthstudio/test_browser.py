"""Browser (Chromium via Playwright): the lead's first session, from login to imported samples."""

from __future__ import annotations

import pytest

from synthstudio.models import Project, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

CSV = (
    "text,gold,llm_label,llm_confidence\n"
    "The parcel never arrived.,delivery,delivery,0.92\n"
    '"I was charged twice, please refund.",billing,billing,0.88\n'
    "Where is my order?,,delivery,0.61\n"
)


@pytest.mark.browser
def test_it_takes_a_lead_from_login_to_imported_samples(browser_page, live_server, lead, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    settings.PROJECT_CREATORS = "everyone"  # the default lets only staff create projects
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)

    page.get_by_role("link", name="New project").click()
    page.fill("#id_name", "Support triage")
    page.get_by_role("button", name="Create project").click()

    page.fill("#id_task_description", "Route customer messages to the team that can act.")
    page.fill("#id_guidelines", "Label the **main** request.")
    for index, (name, description) in enumerate(
        [("billing", "Charges and refunds."), ("delivery", "Parcels.")]
    ):
        page.fill(f"#id_labels-{index}-name", name)
        page.fill(f"#id_labels-{index}-description", description)
    page.get_by_role("button", name="Save codebook").click()
    page.get_by_text("Saved codebook version 1.").wait_for()
    screenshot(page, "core-codebook")

    project = Project.objects.get(name="Support triage")
    page.goto(f"{live_server.url}/projects/{project.id}/samples/")
    page.get_by_role("link", name="Import data").click()
    csv_path = tmp_path / "support.csv"
    csv_path.write_text(CSV)
    page.set_input_files("#id_file", str(csv_path))
    screenshot(page, "core-import-upload")
    page.get_by_role("button", name="Upload and preview").click()

    page.get_by_text("I was charged twice, please refund.").wait_for()
    assert page.locator("#id_gold_label_column").input_value() == "gold"
    page.select_option("#id_llm_label_column", "llm_label")
    page.select_option("#id_llm_confidence_column", "llm_confidence")
    screenshot(page, "core-import-mapping")
    page.get_by_role("button", name="Import", exact=True).click()

    page.get_by_text("samples imported").wait_for()
    screenshot(page, "core-import-done")
    page.get_by_role("link", name="See the samples").click()
    page.get_by_text("The parcel never arrived.").wait_for()
    screenshot(page, "core-samples-after-import")

    assert Sample.objects.filter(project=project).count() == 3
    assert page.get_by_text("3 samples").is_visible()
