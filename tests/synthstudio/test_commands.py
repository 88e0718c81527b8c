"""Management commands: demo (idempotent, printed logins work) and bench_import (one JSON line)."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.test import RequestFactory

from annotation.labelling.offline import OFFLINE_MODEL_NAME
from annotation.models import LabellingRun, ReviewTask, SampleSignals
from annotation.review import queue as review
from evaluation.models import JudgeKind, JudgeRun, Snapshot
from generation.models import GenerationRun
from synthstudio.management.commands.demo import PROJECT_NAME as DEMO_PROJECT_NAME
from synthstudio.models import (
    HumanAnnotation,
    ImportJob,
    JobStatus,
    LLMAnnotation,
    Origin,
    Project,
    Role,
    Sample,
)


@pytest.fixture(autouse=True)
def var_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_demo_once_and_prints_logins_that_work(db):
    first = run("demo")
    second = run("demo")

    project = Project.objects.get(name=DEMO_PROJECT_NAME)
    assert project.codebook.version == 1 and len(project.codebook.label_names) == 4
    assert (
        30
        <= Sample.objects.filter(project=project, is_seed=True).count()
        == HumanAnnotation.objects.filter(sample__project=project).count()
    )
    assert dict(project.memberships.values_list("user__username", "role")) == {
        "demo_lead": Role.LEAD, "demo_ann1": Role.ANNOTATOR, "demo_ann2": Role.ANNOTATOR,
    }  # fmt: skip
    logins = dict(re.findall(r"(demo_\w+)\s+password: (\S+)", second))
    assert logins == dict(re.findall(r"(demo_\w+)\s+password: (\S+)", first)) and len(logins) == 3
    login = RequestFactory().post(
        "/login/"
    )  # django-axes throttles per username and IP: it needs the request
    users = {name: authenticate(login, username=name, password=password) for name, password in logins.items()}
    assert all(users.values())
    for name, password in logins.items():
        validate_password(password, users[name])  # the generated passwords pass every AUTH_PASSWORD_VALIDATOR
    # the demo lead may create projects under the default PROJECT_CREATORS=staff; annotators may not
    assert {name: user.is_staff for name, user in users.items()} == {
        "demo_lead": True, "demo_ann1": False, "demo_ann2": False,
    }  # fmt: skip


def test_the_demo_shows_the_offline_workflow_and_a_second_run_adds_nothing(db):
    run("demo")
    models = (Sample, LLMAnnotation, GenerationRun, LabellingRun, ReviewTask, Snapshot, JudgeRun)
    counts = [model.objects.count() for model in models]
    second = run("demo")

    project = Project.objects.get(name=DEMO_PROJECT_NAME)
    unlabelled_pool = Sample.objects.filter(project=project, origin=Origin.IMPORTED, is_seed=False)
    generated = Sample.objects.filter(project=project, origin=Origin.GENERATED)
    assert (
        60 <= unlabelled_pool.count() <= 80
        and not unlabelled_pool.filter(human_annotations__isnull=False).exists()
    )
    assert GenerationRun.objects.get(project=project).status == JobStatus.SUCCEEDED and generated.exists()
    assert all(sample.provenance["offline"] for sample in generated)
    labelling = LabellingRun.objects.get(project=project)
    assert labelling.status == JobStatus.SUCCEEDED and labelling.done == project.samples.count()
    current = LLMAnnotation.objects.filter(sample__project=project, is_current=True)
    assert current.count() == project.samples.count()
    assert (
        set(current.values_list("model_name", flat=True)) == {OFFLINE_MODEL_NAME}
        and "offline" in OFFLINE_MODEL_NAME
    )
    assert all(abs(sum(a.distribution.values()) - 1) < 1e-6 and len(a.distribution) == 4 for a in current)
    assert SampleSignals.objects.filter(sample__project=project).count() == project.samples.count()
    assert "routed review tasks waiting" in second
    snapshot = Snapshot.objects.get(project=project)
    assert snapshot.is_ready and 0 < snapshot.item_count <= project.samples.count()
    assert set(snapshot.items.values_list("split", flat=True)) == {"train", "test"}
    judge = JudgeRun.objects.get(project=project)
    assert judge.is_offline and judge.kind == JudgeKind.RATING and judge.status == JobStatus.SUCCEEDED
    assert (
        judge.summary["judged"] == project.samples.count() and "offline heuristic judge, not an LLM" in second
    )
    assert [model.objects.count() for model in models] == counts


def test_the_demo_annotators_each_find_a_routed_item_with_two_answers_wanted(db):
    run("demo")

    project = Project.objects.get(name=DEMO_PROJECT_NAME)
    tasks = ReviewTask.objects.filter(project=project, is_open=True)
    assert tasks.count() == 10 and set(tasks.values_list("required_answers", flat=True)) == {2}
    assert not tasks.filter(sample__is_seed=True).exists()
    for username in ("demo_ann1", "demo_ann2"):
        annotator = project.memberships.get(user__username=username).user
        assignment = review.review_next(project=project, annotator=annotator)
        assert assignment is not None and assignment.task.sample_id in set(
            tasks.values_list("sample_id", flat=True)
        )


def test_it_benchmarks_the_import_and_cleans_up(db):
    output = run("bench_import", "--rows", "300").strip().splitlines()

    result = json.loads(output[-1])
    assert result["rows"] == 300 and result["seconds"] > 0 and result["peak_rss_mb"] > 0
    assert {"rows", "seconds", "rows_per_s", "peak_rss_mb"} <= set(result)
    assert not Project.objects.exists() and not Sample.objects.exists() and not ImportJob.objects.exists()
