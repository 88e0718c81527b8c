"""Preference pages: the preferences dashboard (leads), pairwise import and pairs from generation runs
(leads), the one-pair-at-a-time review (any member), and LLM-as-judge runs (leads)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evaluation.dashboards import tables as dashboards
from evaluation.dashboards.views import dashboard_page
from evaluation.models import JudgeRun, PairwiseItem
from evaluation.preferences import judges
from evaluation.preferences import pairs as pairwise_generation
from evaluation.preferences import services as preferences_services
from evaluation.preferences.forms import (
    OFFLINE_ENDPOINT,
    JudgeStartForm,
    PairChoiceForm,
    PairsFromGenerationForm,
    PairwiseImportForm,
)
from generation.models import LLMEndpoint
from generation.services.endpoints import endpoint_default_for
from synthstudio.access import lead_project, project_for_user
from synthstudio.jobs import worker_alive
from synthstudio.models import Role
from synthstudio.uploads import limit_upload_size, upload_refused


def _preferences_context(project, payload: dict, request: HttpRequest) -> dict:
    return {
        "payload": payload,
        "pairwise": payload.get("pairwise") or {},
        "elo_chart": dashboards.elo_chart(payload),
        "bt_chart": dashboards.bradley_terry_chart(payload),
        "judge_runs": preferences_services.judge_runs_for(project=project),
        "endpoints": LLMEndpoint.objects.usable_in(project),
        "default_endpoint": endpoint_default_for(project=project),
        "pair_counts": preferences_services.pairwise_counts(project=project),
    }


@require_GET
@login_required
def metrics_preferences(request: HttpRequest, project_id: int) -> HttpResponse:
    return dashboard_page(
        request, project_id, "preferences", "evaluation/metrics/preferences.html", _preferences_context
    )


# ---------------------------------------------------------------- pairwise preferences


@require_http_methods(["GET", "POST"])
@login_required
@limit_upload_size
def pairwise_import(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    status = 200
    if request.method == "POST":
        if refused := upload_refused(request):
            messages.error(request, refused)
            status = 413
        else:
            form = PairwiseImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                result = preferences_services.pairwise_import(
                    project=project, records=form.records, batch=upload.name
                )
                messages.success(
                    request,
                    f"Imported {result['pairs']} pairs with {result['judgments']} judgments from {result['raters']} annotators.",
                )
                return redirect("evaluation:metrics_preferences", project_id=project.id)
            for message in form.errors["file"]:
                messages.error(request, message)
    return render(
        request,
        "evaluation/metrics/pairwise_import.html",
        {"project": project, "role": Role.LEAD, "tab": "preferences"},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def pairwise_from_generation(request: HttpRequest, project_id: int) -> HttpResponse:
    """Lead: make pairs from two generation runs (or configs), matched on their condition values."""
    project = lead_project(request, project_id)
    form = PairsFromGenerationForm(request.POST if request.method == "POST" else None)
    if form.is_bound and not form.is_valid():
        messages.error(request, "Choose two finished generation runs or configs of this project.")
    elif form.is_bound:
        try:
            result = pairwise_generation.pairwise_from_generation(
                project=project, key_a=form.cleaned_data["a"], key_b=form.cleaned_data["b"]
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
    chosen = form.cleaned_data if form.is_bound and form.is_valid() else {}
    context = {"project": project, "role": Role.LEAD, "tab": "preferences", "sources": sources,
               "chosen_a": chosen.get("a", ""), "chosen_b": chosen.get("b", "")}  # fmt: skip
    return render(request, "evaluation/metrics/pairwise_from_generation.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def pairwise_review(request: HttpRequest, project_id: int) -> HttpResponse:
    """One pair at a time for any member: choose the first, the second or a tie (keys 1, 2, 3). The review
    workbench loads the pair from here (?in=queue: nothing at all when no pair is waiting)."""
    project, role = project_for_user(request, project_id)
    if request.method == "POST":
        form = PairChoiceForm(request.POST)
        form.is_valid()
        if "item" in form.errors:
            raise Http404("No such pair.")
        item = get_object_or_404(PairwiseItem, pk=form.cleaned_data["item"], project=project)
        if "choice" in form.errors:
            messages.error(request, "Choose the first response, the second, or a tie.")
        else:
            preferences_services.pairwise_judge(
                item=item, user=request.user, shown=form.cleaned_data["choice"]
            )
        return redirect("evaluation:pairwise_review", project_id=project.id)
    item = preferences_services.pairwise_next_for(project=project, user=request.user)
    first = second = None
    if item is not None:
        a_first = preferences_services.a_shown_first_for(item_id=item.id, user_id=request.user.pk)
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
    form = JudgeStartForm(request.POST, project=project)
    form.is_valid()
    if "kind" in form.errors:
        messages.error(request, "Choose what the judge should do.")
        return redirect("evaluation:metrics_preferences", project_id=project.id)
    if "endpoint" in form.errors:
        raise Http404("No such endpoint.")
    endpoint = form.cleaned_data["endpoint"]
    offline = endpoint == OFFLINE_ENDPOINT
    run = judges.judge_run_start(
        project=project, user=request.user, kind=form.cleaned_data["kind"], endpoint=None if offline else endpoint,
        limit=form.cleaned_data["limit"], offline=offline,
    )  # fmt: skip
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


@require_GET
@login_required
def pairwise_waiting_badge(request: HttpRequest, project_id: int) -> HttpResponse:
    """The "N pairs waiting" link of the review workbench's header, which the workbench loads with hx-get
    (annotation sits below evaluation and never imports it). Empty when no pair waits for the user."""
    project, _role = project_for_user(request, project_id)
    waiting = preferences_services.pairwise_pending_count(project=project, user=request.user)
    if not waiting:
        return HttpResponse("")
    url = reverse(
        "evaluation:pairwise_review", args=[project.id]
    )  # an int and a reversed URL: nothing to escape
    return HttpResponse(
        f'<a href="{url}" title="Pairs of responses to compare; they follow when your label queue is empty">'
        f"<strong>{waiting}</strong> pair{'' if waiting == 1 else 's'} waiting</a>"
    )
