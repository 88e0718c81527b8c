"""Evaluation dashboards (leads): overview, agreement and diversity pages, their CSV tables, and recomputing
the numbers behind them (the preference and benchmark pages are in evaluation.preferences.views and
evaluation.benchmark.views).

Dashboards read the cached numbers (MetricsCache) so they render fast at any project size; when the data
changed they show the last numbers with a "recomputing" state and reload once the worker is done.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from evaluation.benchmark.services import latest_benchmark
from evaluation.dashboards import estimates as estimates_services
from evaluation.dashboards import services as metrics_services
from evaluation.dashboards import tables as dashboards
from evaluation.dashboards.forms import MetricsRecomputeForm
from evaluation.models import BenchmarkRun, MetricsCache, MetricsRefresh
from synthstudio.access import lead_project
from synthstudio.csv_safety import csv_writer
from synthstudio.jobs import worker_alive
from synthstudio.models import Role

DEFAULT_MARGIN = 0.05


def _margin(request: HttpRequest) -> float:
    try:
        margin = float(request.GET.get("margin", DEFAULT_MARGIN))
    except ValueError:
        return DEFAULT_MARGIN
    return margin if 0.005 <= margin <= 0.45 else DEFAULT_MARGIN


def dashboard_page(request: HttpRequest, project_id: int, page: str, template: str, build) -> HttpResponse:
    """A dashboard tab from the cached numbers; `build(project, payload, request)` gives the tab's context."""
    project = lead_project(request, project_id)
    state = metrics_services.metrics_state(project=project)
    context = {"project": project, "role": Role.LEAD, "tab": page, "state": state, "worker_alive": worker_alive(),
               **build(project, state["payload"], request)}  # fmt: skip
    return render(request, template, context)


def _overview_context(project, payload: dict, request: HttpRequest) -> dict:
    margin = _margin(request)
    faithfulness = metrics_services.faithfulness_with_targets(
        payload.get("faithfulness") or {}, margin=margin
    )
    return {
        "payload": payload,
        "margin": margin,
        "margin_percent": round(margin * 100, 1),
        "faithfulness": faithfulness,
        "label_chart": dashboards.label_chart(payload),
        "confidence_chart": dashboards.confidence_chart(payload),
        "entropy_chart": dashboards.entropy_chart(payload),
        "faithfulness_chart": dashboards.faithfulness_chart(faithfulness),
    }


def _agreement_context(project, payload: dict, request: HttpRequest) -> dict:
    return {
        "payload": payload,
        "agreement": payload.get("agreement") or {},
        "confusion_chart": dashboards.confusion_chart(payload),
        "over_time_chart": dashboards.agreement_over_time_chart(payload),
        "annotators": payload.get("annotators", []),
    }


def _diversity_context(project, payload: dict, request: HttpRequest) -> dict:
    return {
        "payload": payload,
        "groups": payload.get("diversity", []),
        "diversity_chart": dashboards.diversity_chart(payload),
    }


@require_GET
@login_required
def metrics_overview(request: HttpRequest, project_id: int) -> HttpResponse:
    return dashboard_page(
        request, project_id, "overview", "evaluation/metrics/overview.html", _overview_context
    )


@require_GET
@login_required
def metrics_agreement(request: HttpRequest, project_id: int) -> HttpResponse:
    return dashboard_page(
        request, project_id, "agreement", "evaluation/metrics/agreement.html", _agreement_context
    )


@require_GET
@login_required
def metrics_diversity(request: HttpRequest, project_id: int) -> HttpResponse:
    return dashboard_page(
        request, project_id, "diversity", "evaluation/metrics/diversity.html", _diversity_context
    )


@require_GET
@login_required
def metrics_estimates(request: HttpRequest, project_id: int) -> HttpResponse:
    """Unbiased estimates from the audit sample (computed per request, not cached: see its service)."""
    project = lead_project(request, project_id)
    alpha = estimates_services.estimates_alpha(request.GET.get("confidence"))
    estimates = estimates_services.project_estimates(project=project, alpha=alpha)
    context = {"project": project, "role": Role.LEAD, "tab": "estimates", "estimates": estimates,
               "no_audit_message": estimates_services.NO_AUDIT_MESSAGE}  # fmt: skip
    return render(request, "evaluation/metrics/estimates.html", context)


@require_POST
@login_required
def metrics_recompute(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = MetricsRecomputeForm(request.POST, project=project)
    job = metrics_services.metrics_refresh_start(project=project, user=request.user, force=True)
    messages.info(request, "Recomputing the evaluation numbers in the background.")
    back = form.cleaned_data["next"] if form.is_valid() else ""
    if job is None or not back:
        back = reverse("evaluation:metrics_overview", args=[project.id])
    return redirect(back)


@require_GET
@login_required
def metrics_refresh_status(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """Progress of a recomputation; once it ends, htmx reloads the page to show the new numbers."""
    project = lead_project(request, project_id)
    job = get_object_or_404(MetricsRefresh, pk=job_id, project=project)
    poll_url = reverse("evaluation:metrics_refresh_status", args=[project.id, job.id])
    response = render(
        request,
        "synthstudio/_job_progress.html",
        {"job": job, "poll_url": poll_url, "worker_alive": worker_alive()},
    )
    if job.is_finished and request.htmx:
        response["HX-Refresh"] = "true"
    return response


CSV_TABLES = {
    "label-distribution": lambda payload, request, project: dashboards.label_distribution_table(payload),
    "confidence": lambda payload, request, project: dashboards.confidence_table(payload),
    "entropy": lambda payload, request, project: dashboards.entropy_table(payload),
    "faithfulness": lambda payload, request, project: dashboards.faithfulness_table(
        metrics_services.faithfulness_with_targets(payload.get("faithfulness") or {}, margin=_margin(request))
    ),
    "confusion-matrix": lambda payload, request, project: dashboards.confusion_table(payload),
    "per-label": lambda payload, request, project: dashboards.per_label_table(payload),
    "agreement-over-time": lambda payload, request, project: dashboards.agreement_over_time_table(payload),
    "annotator-pairs": lambda payload, request, project: dashboards.rater_pairs_table(
        (payload.get("agreement") or {}).get("human_human") or {}
    ),
    "annotators": lambda payload, request, project: dashboards.annotator_table(payload),
    "diversity": lambda payload, request, project: dashboards.diversity_table(payload),
    "leaderboard": lambda payload, request, project: dashboards.leaderboard_table(payload),
    "pairwise-raters": lambda payload, request, project: dashboards.rater_pairs_table(
        (payload.get("pairwise") or {}).get("agreement") or {}
    ),
    "benchmark": lambda payload, request, project: dashboards.benchmark_table(
        (latest_benchmark(project=project) or BenchmarkRun(results=[])).results
    ),
}


@require_GET
@login_required
def metrics_csv(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    project = lead_project(request, project_id)
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    cache = MetricsCache.objects.filter(project=project).first()
    header, rows = CSV_TABLES[table](cache.payload if cache else {}, request, project)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.id}-{table}.csv"'
    writer = csv_writer(response)  # label and model names are user text: spreadsheet-safe cells
    writer.writerow(header)
    writer.writerows(rows)
    return response
