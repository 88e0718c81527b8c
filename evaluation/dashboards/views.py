"""Evaluation dashboards (leads), pairwise review (members), pairwise import, judge and benchmark runs.

Dashboards read the cached numbers (MetricsCache) so they render fast at any project size; when the data
changed they show the last numbers with a "recomputing" state and reload once the worker is done.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evaluation.benchmark.downstream import read_test_file
from evaluation.dashboards import services as metrics_services
from evaluation.dashboards import tables as dashboards
from evaluation.models import BenchmarkRun, JudgeKind, JudgeRun, MetricsCache, MetricsRefresh, PairwiseItem
from evaluation.preferences import judges
from evaluation.preferences import pairs as pairwise_generation
from evaluation.preferences.files import PairwiseFileError, parse_pairwise_file
from generation.models import LLMEndpoint
from synthstudio.access import lead_project, project_for_user
from synthstudio.csv_safety import csv_writer
from synthstudio.jobs import worker_alive
from synthstudio.models import Role
from synthstudio.uploads import limit_upload_size, upload_refused

DEFAULT_MARGIN = 0.05


def _margin(request: HttpRequest) -> float:
    try:
        margin = float(request.GET.get("margin", DEFAULT_MARGIN))
    except ValueError:
        return DEFAULT_MARGIN
    return margin if 0.005 <= margin <= 0.45 else DEFAULT_MARGIN


def _dashboard(request: HttpRequest, project_id: int, page: str, template: str, build) -> HttpResponse:
    project = lead_project(request, project_id)
    state = metrics_services.metrics_state(project=project)
    context = {"project": project, "role": Role.LEAD, "tab": page, "state": state, "worker_alive": worker_alive(),
               **build(project, state["payload"], request)}  # fmt: skip
    return render(request, template, context)


def _overview_context(project, payload: dict, request: HttpRequest) -> dict:
    margin = _margin(request)
    faithfulness = metrics_services.faithfulness_with_targets(payload.get("faithfulness") or {}, margin=margin)
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
    return {"payload": payload, "groups": payload.get("diversity", []), "diversity_chart": dashboards.diversity_chart(payload)}


def _preferences_context(project, payload: dict, request: HttpRequest) -> dict:
    return {
        "payload": payload,
        "pairwise": payload.get("pairwise") or {},
        "elo_chart": dashboards.elo_chart(payload),
        "bt_chart": dashboards.bradley_terry_chart(payload),
        "judge_runs": metrics_services.judge_runs_for(project=project),
        "endpoints": LLMEndpoint.objects.usable_in(project),
        "default_endpoint": judges.default_endpoint_settings(),
        "pair_counts": metrics_services.pairwise_counts(project=project),
    }


@require_GET
@login_required
def metrics_overview(request: HttpRequest, project_id: int) -> HttpResponse:
    return _dashboard(request, project_id, "overview", "evaluation/metrics/overview.html", _overview_context)


@require_GET
@login_required
def metrics_agreement(request: HttpRequest, project_id: int) -> HttpResponse:
    return _dashboard(request, project_id, "agreement", "evaluation/metrics/agreement.html", _agreement_context)


@require_GET
@login_required
def metrics_diversity(request: HttpRequest, project_id: int) -> HttpResponse:
    return _dashboard(request, project_id, "diversity", "evaluation/metrics/diversity.html", _diversity_context)


@require_GET
@login_required
def metrics_preferences(request: HttpRequest, project_id: int) -> HttpResponse:
    return _dashboard(request, project_id, "preferences", "evaluation/metrics/preferences.html", _preferences_context)


@require_GET
@login_required
def metrics_benchmark(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    latest = metrics_services.latest_benchmark(project=project)
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
    try:
        fraction = float(request.POST.get("test_fraction", "0.3"))
        seed = int(request.POST.get("seed", "0"))
    except ValueError:
        fraction, seed = -1.0, 0
    if not 0.05 <= fraction <= 0.9:
        messages.error(request, "The held-out share must be between 0.05 and 0.9.")
        return redirect("evaluation:metrics_benchmark", project_id=project.id)
    test_rows, file_name = None, ""
    upload = request.FILES.get("test_file")
    if upload:
        try:
            test_rows = read_test_file(upload, upload.name)
        except ValueError as error:
            messages.error(request, f"Test file: {error}")
            return redirect("evaluation:metrics_benchmark", project_id=project.id)
        file_name = upload.name
    run = metrics_services.benchmark_start(
        project=project, user=request.user, test_fraction=fraction, seed=seed, test_rows=test_rows, test_file_name=file_name
    )
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


@require_POST
@login_required
def metrics_recompute(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = metrics_services.metrics_refresh_start(project=project, user=request.user, force=True)
    messages.info(request, "Recomputing the evaluation numbers in the background.")
    back = request.POST.get("next", "")
    if job is None or not back.startswith(f"/projects/{project.id}/"):
        back = reverse("evaluation:metrics_overview", args=[project.id])
    return redirect(back)


@require_GET
@login_required
def metrics_refresh_status(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """Progress of a recomputation; once it ends, htmx reloads the page to show the new numbers."""
    project = lead_project(request, project_id)
    job = get_object_or_404(MetricsRefresh, pk=job_id, project=project)
    poll_url = reverse("evaluation:metrics_refresh_status", args=[project.id, job.id])
    response = render(request, "synthstudio/_job_progress.html", {"job": job, "poll_url": poll_url, "worker_alive": worker_alive()})
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
        (metrics_services.latest_benchmark(project=project) or BenchmarkRun(results=[])).results
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


# ---------------------------------------------------------------- pairwise preferences


@require_http_methods(["GET", "POST"])
@login_required
@limit_upload_size
def pairwise_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        if refused := upload_refused(request):
            messages.error(request, refused)
            status = 413
        elif upload is None:
            messages.error(request, "Choose a file to import.")
        else:
            try:
                records = parse_pairwise_file(upload, upload.name)
            except PairwiseFileError as error:
                messages.error(request, f"Could not import {upload.name}: {error}")
            else:
                result = metrics_services.pairwise_import(project=project, records=records, batch=upload.name)
                messages.success(
                    request, f"Imported {result['pairs']} pairs with {result['judgments']} judgments from {result['raters']} annotators."
                )
                return redirect("evaluation:metrics_preferences", project_id=project.id)
    return render(request, "evaluation/metrics/pairwise_import.html", {"project": project, "role": Role.LEAD, "tab": "preferences"},
                  status=status)


@require_http_methods(["GET", "POST"])
@login_required
def pairwise_from_generation(request: HttpRequest, project_id: int) -> HttpResponse:
    """Lead: make pairs from two generation runs (or configs), matched on their condition values."""
    project = lead_project(request, project_id)
    if request.method == "POST":
        try:
            result = pairwise_generation.pairwise_from_generation(
                project=project, key_a=request.POST.get("a", ""), key_b=request.POST.get("b", "")
            )
        except pairwise_generation.PairingError as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request,
                f"Made {result['pairs']} pairs ({result['existing']} already existed). "
                f"{result['unmatched_conditions']} condition combinations had no partner; "
                f"{result['unpaired_samples']} samples stayed unpaired.",
            )
            return redirect("evaluation:metrics_preferences", project_id=project.id)
    sources = pairwise_generation.generation_sources(project=project)
    context = {"project": project, "role": Role.LEAD, "tab": "preferences", "sources": sources,
               "chosen_a": request.POST.get("a", ""), "chosen_b": request.POST.get("b", "")}  # fmt: skip
    return render(request, "evaluation/metrics/pairwise_from_generation.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def pairwise_review(request: HttpRequest, project_id: int) -> HttpResponse:
    """One pair at a time for any member: choose the first, the second or a tie (keys 1, 2, 3). The review
    workbench loads the pair from here (?in=queue: nothing at all when no pair is waiting)."""
    project, role = project_for_user(request, project_id)
    if request.method == "POST":
        item_id = request.POST.get("item", "")
        if not item_id.isdigit():
            raise Http404("No such pair.")
        item = get_object_or_404(PairwiseItem, pk=int(item_id), project=project)
        shown = request.POST.get("choice", "")
        if shown not in {"first", "second", "tie"}:
            messages.error(request, "Choose the first response, the second, or a tie.")
        else:
            metrics_services.pairwise_judge(item=item, user=request.user, shown=shown)
        return redirect("evaluation:pairwise_review", project_id=project.id)
    item = metrics_services.pairwise_next_for(project=project, user=request.user)
    first = second = None
    if item is not None:
        a_first = metrics_services.a_shown_first_for(item_id=item.id, user_id=request.user.pk)
        first, second = (item.response_a, item.response_b) if a_first else (item.response_b, item.response_a)
    context = {"project": project, "role": role, "item": item, "first": first, "second": second,
               "in_queue": request.GET.get("in") == "queue"}  # fmt: skip
    template = "evaluation/metrics/pairwise_review.html"
    if request.htmx:
        template += "#pair"
    return render(request, template, context)


# ---------------------------------------------------------------- LLM-as-judge


@require_POST
@login_required
def judge_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    kind = request.POST.get("kind", "")
    if kind not in JudgeKind.values:
        messages.error(request, "Choose what the judge should do.")
        return redirect("evaluation:metrics_preferences", project_id=project.id)
    endpoint = None
    offline = request.POST.get("endpoint") == "offline"
    if request.POST.get("endpoint") and not offline:
        if not request.POST["endpoint"].isdigit():
            raise Http404("No such endpoint.")
        endpoint = LLMEndpoint.objects.usable_in(project).filter(pk=int(request.POST["endpoint"])).first()
        if endpoint is None:
            raise Http404("No such endpoint.")
    try:
        limit = max(1, min(5000, int(request.POST.get("limit", "200"))))
    except ValueError:
        limit = 200
    run = judges.judge_run_start(
        project=project, user=request.user, kind=kind, endpoint=endpoint, limit=limit, offline=offline
    )
    return redirect("evaluation:judge_detail", project_id=project.id, run_id=run.id)


@require_GET
@login_required
def judge_detail(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(JudgeRun, pk=run_id, project=project)
    poll_url = reverse("evaluation:judge_detail", args=[project.id, run.id])
    context = {"project": project, "role": Role.LEAD, "tab": "preferences", "run": run, "poll_url": poll_url,
               "summary": run.summary, "worker_alive": worker_alive()}  # fmt: skip
    template = "evaluation/metrics/judge_detail.html"
    if request.htmx:
        template += "#run-state"
    return render(request, template, context)
