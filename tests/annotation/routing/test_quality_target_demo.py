"""The demo's certified-labels project: offline labels, a quality-target policy and a certificate marked
offline, made by `manage.py demo_quality_target` after `manage.py demo` (and left alone by a second run)."""

from __future__ import annotations

import io

from django.core.management import call_command

from annotation.management.commands.demo_quality_target import PROJECT_NAME, reference_labels
from annotation.models import LabelCertificate, ReviewTask
from annotation.routing import quality_target
from annotation.routing.certificates import certificate_as_dict, certificate_is_stale
from synthstudio.models import LabelMethod, LLMAnnotation, Project, Sample


def test_the_demo_has_a_quality_target_project_with_an_offline_certificate(
    db, settings, tmp_path, monkeypatch
):
    settings.VAR_DIR = tmp_path  # the demo keeps its logins under var/
    monkeypatch.setattr(quality_target, "_fresh_seed", lambda: 7)  # the calibration draw: fixed here
    out = io.StringIO()
    call_command("demo", stdout=io.StringIO())
    call_command("demo_quality_target", stdout=out)
    project = Project.objects.get(name=PROJECT_NAME)
    certificate = LabelCertificate.objects.get(project=project)
    assert project.routing_policy.strategy == "quality_target" and project.routing_policy.is_active
    assert not certificate_is_stale(certificate) and certificate.is_offline
    statement = certificate_as_dict(certificate, stale=False)["statement"]
    assert "LLM labels came from the offline stand-in" in statement and statement in out.getvalue()
    assert (
        LLMAnnotation.objects.filter(sample__project=project, is_current=True)
        .exclude(method=LabelMethod.OFFLINE)
        .count()
        == 0
    )
    truth = reference_labels()
    final = dict(Sample.objects.filter(project=project).values_list("text", "final_label"))
    error = sum(final[text] != label for text, label in truth.items()) / len(truth)
    assert certificate.item_count == len(truth) and error <= certificate.epsilon
    assert certificate.human_count < certificate.item_count  # some offline labels are kept
    assert ReviewTask.objects.filter(project=project, is_audit=True).exists()

    call_command("demo_quality_target", stdout=io.StringIO())  # a second run changes nothing
    assert LabelCertificate.objects.filter(project=project).count() == 1
