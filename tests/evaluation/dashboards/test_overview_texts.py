"""The evaluation overview's acceptable share: none without an A–D rating (a lone unfaithful flag is not a
verdict), and counted in words that match the number."""

from __future__ import annotations

import re

from django.template.loader import render_to_string
from django.urls import reverse


def overview_text(rf, lead, project, faithfulness: dict) -> str:
    request = rf.get(reverse("evaluation:metrics_overview", args=[project.id]))
    request.user = lead
    body = render_to_string(
        "evaluation/metrics/overview.html",
        {"project": project, "role": "lead", "payload": {"counts": {}, "faithfulness": faithfulness}},
        request=request,
    )
    card = body.split('id="acceptable-card"')[1].split("</div></div>")[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card)).strip().lstrip("> ")


def test_a_flag_without_any_rating_shows_no_share(rf, lead, project):
    text = overview_text(
        rf,
        lead,
        project,
        {
            "overall": {"n": 1, "share": 0.0, "low": 0.0, "high": 0.79},
            "ratings": {"A": 0, "B": 0, "C": 0, "D": 0},
            "flags": {"unfaithful": 1},
        },
    )
    assert text.startswith("— acceptable (A/B)") and "no A–D ratings yet" in text
    assert "0%" not in text and "1 rating" not in text


def test_with_ratings_the_share_and_its_count_show(rf, lead, project):
    text = overview_text(
        rf,
        lead,
        project,
        {"overall": {"n": 2, "share": 0.5, "low": 0.1, "high": 0.9}, "ratings": {"A": 1, "C": 1}},
    )
    assert text.startswith("50% acceptable (A/B)") and "2 rated or flagged answers" in text
