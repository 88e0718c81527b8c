"""What a label certificate speaks for (annotation.routing.certificates): the digest of samples and final labels,
staleness after a change, and the plain-words statement every page and export shares."""

from __future__ import annotations

import pytest

from annotation.models import LabelCertificate
from annotation.routing.certificates import (
    certificate_as_dict,
    certificate_is_stale,
    certificate_latest,
    final_labels_digest,
)
from tests.factories import ProjectFactory, SampleFactory

pytestmark = pytest.mark.django_db


def _certificate(project, **overrides) -> LabelCertificate:
    values = dict(
        project=project,
        epsilon=0.05,
        confidence=0.95,
        threshold=0.4,
        upper_bound=0.043,
        estimated_error=0.021,
        error_ci_low=0.01,
        error_ci_high=0.035,
        item_count=4,
        human_count=1,
        calibration_count=1,
        labels_digest=final_labels_digest(project=project),
    )
    values.update(overrides)
    return LabelCertificate.objects.create(**values)


def test_the_digest_changes_with_a_final_label_a_text_or_a_new_sample_and_only_then():
    project = ProjectFactory()
    samples = [SampleFactory(project=project, text=f"text {i}", final_label="positive") for i in range(3)]
    first = final_labels_digest(project=project)
    assert final_labels_digest(project=project) == first
    SampleFactory(project=ProjectFactory(), text="another project's sample")
    assert final_labels_digest(project=project) == first

    samples[0].final_label = "negative"
    samples[0].save(update_fields=["final_label"])
    relabelled = final_labels_digest(project=project)
    assert relabelled != first

    samples[1].text = "text 1, corrected"
    samples[1].save(update_fields=["text"])
    edited = final_labels_digest(project=project)
    assert edited not in (first, relabelled)

    SampleFactory(project=project, text="new", final_label="positive")
    assert final_labels_digest(project=project) not in (first, relabelled, edited)


def test_a_certificate_is_stale_after_a_label_change_and_the_latest_one_is_current():
    project = ProjectFactory()
    sample = SampleFactory(project=project, final_label="positive")
    older = _certificate(project, epsilon=0.1)
    newer = _certificate(project)
    assert certificate_latest(project=project) == newer
    assert not certificate_is_stale(newer)
    assert not certificate_is_stale(older)

    sample.final_label = "negative"
    sample.save(update_fields=["final_label"])
    assert certificate_is_stale(newer)


def test_the_statement_gives_the_guarantee_its_figures_and_its_caveats():
    project = ProjectFactory()
    certificate = _certificate(project, is_offline=True)
    data = certificate_as_dict(certificate, stale=False)
    assert data["human_share"] == pytest.approx(0.25)
    assert data["alpha"] == pytest.approx(0.05)
    assert data["statement"].startswith(
        "At most 5.0% of the final labels are wrong, with probability at least 95%; estimated error 2.1% "
        "[1.0%, 3.5%]; humans labelled 25.0% of 4 items."
    )
    assert "reviewers' answers are right" in data["statement"]
    assert "offline stand-in" in data["statement"]
    assert "STALE" not in data["statement"]
    assert "STALE" in certificate_as_dict(certificate, stale=True)["statement"]
