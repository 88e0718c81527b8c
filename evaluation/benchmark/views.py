"""Downstream benchmark pages (leads): the latest results and past runs, starting a run, a run's progress."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from evaluation.benchmark import services as benchmark_services
from evaluation.benchmark.forms import BenchmarkStartForm
from evaluation.dashboards import tables as dashboards
from evaluation.models import BenchmarkRun
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import Role
from synthstudio.uploads import limit_upload_size, upload_refused


@require_GET
@login_required
def metrics_benchmark(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    latest = benchmark_services.latest_benchmark(project=project)
    results = latest.results if latest else []
    context = {
        "project": project, "role": Role.LEAD, "tab": "benchmark", "latest": latest, "results": results,
        "benchmark_chart": dashboards.benchmark_chart(results),
        "runs": BenchmarkRun.objects.filter(project=project).order_by("-created_at")[:10],
        "worker_alive": worker_alive(),
    }  # fmt: skip
    return render(request, "evaluation/metrics/benchmark.html", context)


@require_POST
@login_required
@limit_upload_size
def benchmark_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    if refused := upload_refused(request):
        messages.error(request, f"Test file: {refused}")
        return redirect("evaluation:metrics_benchmark", project_id=project.id)
    form = BenchmarkStartForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, form.first_error())
        return redirect("evaluation:metrics_benchmark", project_id=project.id)
    upload = form.cleaned_data["test_file"]
    run = benchmark_services.benchmark_start(
        project=project, user=request.user, test_fraction=form.cleaned_data["test_fraction"],
        seed=form.cleaned_data["seed"], test_rows=form.test_rows, test_file_name=upload.name if upload else "",
    )  # fmt: skip
    return redirect("evaluation:benchmark_detail", project_id=project.id, run_id=run.id)


@require_GET
@login_required
def benchmark_detail(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(BenchmarkRun, pk=run_id, project=project)
    poll_url = reverse("evaluation:benchmark_detail", args=[project.id, run.id])
    context = {"project": project, "role": Role.LEAD, "tab": "benchmark", "run": run, "poll_url": poll_url,
               "results": run.results, "benchmark_chart": dashboards.benchmark_chart(run.results), "worker_alive": worker_alive()}  # fmt: skip
    template = "evaluation/metrics/benchmark_detail.html"
    if request.htmx:
        template += "#run-state"
    return render(request, template, context)
