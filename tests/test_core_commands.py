"""Management commands: demo (idempotent, printed logins work) and bench_import (one JSON line)."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from synthstudio.models import HumanAnnotation, ImportJob, Project, Role, Sample


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

    project = Project.objects.get()
    assert project.codebook.version == 1 and len(project.codebook.label_names) == 4
    assert (
        30 <= Sample.objects.filter(project=project, is_seed=True).count() == HumanAnnotation.objects.count()
    )
    assert dict(project.memberships.values_list("user__username", "role")) == {
        "demo_lead": Role.LEAD, "demo_ann1": Role.ANNOTATOR, "demo_ann2": Role.ANNOTATOR,
    }  # fmt: skip
    logins = dict(re.findall(r"(demo_\w+)\s+password: (\S+)", second))
    assert logins == dict(re.findall(r"(demo_\w+)\s+password: (\S+)", first)) and len(logins) == 3
    assert all(authenticate(username=name, password=password) for name, password in logins.items())


def test_it_benchmarks_the_import_and_cleans_up(db):
    output = run("bench_import", "--rows", "300").strip().splitlines()

    result = json.loads(output[-1])
    assert result["rows"] == 300 and result["seconds"] > 0 and result["peak_rss_mb"] > 0
    assert {"rows", "seconds", "rows_per_s", "peak_rss_mb"} <= set(result)
    assert not Project.objects.exists() and not Sample.objects.exists() and not ImportJob.objects.exists()
