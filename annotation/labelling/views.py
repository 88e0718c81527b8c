"""Lead pages of LLM labelling and routing: start a labelling run and watch it, the label distribution charts,
the routing policy with a preview of what it would route, and the routed items with their reasons."""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import services
from annotation.forms import LabellingRunForm, RoutingPolicyForm
from annotation.labelling.charts import histogram
from annotation.models import LabellingRun, ReviewTask, SampleSignals, SignalsRun
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import LabelMethod, LLMAnnotation, Project, Role


def _labelling_context(project: Project) -> dict:
    current = LLMAnnotation.objects.filter(sample__project=project, is_current=True)
    label_counts = list(current.filter(valid=True).values("label").annotate(count=Count("id")).order_by("-count", "label"))
    totals = current.aggregate(
        labelled=Count("id"),
        invalid=Count("id", filter=Q(valid=False)),
        offline=Count("id", filter=Q(method=LabelMethod.OFFLINE)),
    )
    signal_rows = SampleSignals.objects.for_project(project).values_list("least_confidence", "entropy")
    confidences = [1.0 - lc for lc, _ in signal_rows if lc is not None]
    entropies = [e for _, e in signal_rows if e is not None]
    label_total = project.codebook.labels.count() if project.codebook else 2

    return {
        "label_counts": label_counts,
        "totals": totals,
        "charts": [
            histogram("Confidence of the LLM label", confidences, low=0.0, high=1.0),
            histogram("Entropy of the label distribution (nats)", entropies, low=0.0, high=math.log(max(2, label_total))),
        ],
        "runs": LabellingRun.objects.filter(project=project).order_by("-created_at")[:10],
        "signals_run": SignalsRun.objects.filter(project=project).order_by("-created_at").first(),
        "worker_alive": worker_alive(),
    }


@require_GET
@login_required
def labelling_overview(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = LabellingRunForm(project=project)
    context = {"project": project, "role": Role.LEAD, "form": form, **_labelling_context(project)}
    template = "annotation/labelling_overview.html"
    if request.htmx:
        template += "#labelling-summary"
    return render(request, template, context)


@require_POST
@login_required
def labelling_run_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = LabellingRunForm(request.POST, project=project)
    if not form.is_valid() or project.codebook is None:
        if project.codebook is None:
            form.add_error(None, "Write the codebook first: the LLM labels with the codebook humans read.")
        context = {"project": project, "role": Role.LEAD, "form": form, **_labelling_context(project)}
        return render(request, "annotation/labelling_overview.html", context, status=400)
    data = form.cleaned_data
    run = services.labelling_run_start(
        project=project,
        user=request.user,
        method=data["method"],
        endpoint=data["endpoint"],
        samples_per_item=data["samples_per_item"],
        temperature=data["temperature"],
        demo_count=data["demo_count"],
        only_unlabelled=data["only_unlabelled"],
    )
    messages.success(request, f"Labelling run {run.pk} started" + (" (offline)." if run.is_offline else "."))
    return redirect("annotation:labelling_run_detail", project_id=project.id, run_id=run.pk)


@require_GET
@login_required
def labelling_run_detail(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(LabellingRun, pk=run_id, project=project)
    recent = (
        LLMAnnotation.objects.filter(run_ref=run.run_ref).select_related("sample").order_by("-id")[:20]
    )
    context = {
        "project": project,
        "role": Role.LEAD,
        "run": run,
        "recent": recent,
        "worker_alive": worker_alive(),
        "poll_url": request.path,
    }
    template = "annotation/labelling_run_detail.html"
    if request.htmx:
        template += "#run-progress"
    return render(request, template, context)


@require_POST
@login_required
def labelling_run_resume(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(LabellingRun, pk=run_id, project=project)
    if services.labelling_run_resume(run=run):
        messages.success(request, f"Labelling run {run.pk} sent to a worker again; finished labels are kept.")
    else:
        messages.info(request, f"Labelling run {run.pk} is finished or a live worker is running it: nothing to resume.")
    return redirect("annotation:labelling_run_detail", project_id=project.id, run_id=run.pk)


@require_POST
@login_required
def labelling_run_cancel(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(LabellingRun, pk=run_id, project=project)
    services.labelling_run_cancel(run=run)
    messages.success(request, f"Labelling run {run.pk} cancelled; its finished labels stay.")
    return redirect("annotation:labelling_run_detail", project_id=project.id, run_id=run.pk)


@require_POST
@login_required
def signals_run_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = services.signals_run_start(project=project, user=request.user)
    messages.success(request, "Computing embeddings and routing signals.")
    return redirect("annotation:signals_run_progress", project_id=project.id, run_id=run.pk)


@require_GET
@login_required
def signals_run_progress(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(SignalsRun, pk=run_id, project=project)
    context = {"project": project, "role": Role.LEAD, "job": run, "worker_alive": worker_alive(), "poll_url": request.path}
    template = "annotation/signals_run_progress.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@login_required
def routing_policy(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the policy form and a preview of the current policy. POST with `preview`: the preview of the
    submitted (unsaved) policy. POST with `save`: save it (and `route_now`: route the first batch)."""
    project = lead_project(request, project_id)
    policy = services.routing_policy_for(project=project)
    form = RoutingPolicyForm(request.POST or None, instance=policy)
    preview_policy = policy
    if request.method == "POST":
        if not form.is_valid():
            return _render_routing(request, project, form, policy, preview=[], status=400)
        if "save" in request.POST or "route_now" in request.POST:
            saved = form.save(commit=False)
            saved.updated_by = request.user
            saved.save()
            if "route_now" in request.POST:
                tasks = services.routing_route_next_batch(project=project)
                messages.success(request, f"Policy saved; routed {len(tasks)} items to the review queue.")
            else:
                messages.success(request, "Routing policy saved.")
            return redirect("annotation:routing_policy", project_id=project.id)
        preview_policy = form.save(commit=False)  # preview only: not saved
    preview = services.routing_preview(project=project, policy=preview_policy)
    return _render_routing(request, project, form, preview_policy, preview=preview)


def _render_routing(request, project, form, policy, *, preview, status: int = 200) -> HttpResponse:
    state = services.routing_state(project=project, policy=policy)
    context = {"project": project, "role": Role.LEAD, "form": form, "preview": preview, "state": state,
               "policy": policy, "worker_alive": worker_alive() if policy.next_batch_queued_at else True}
    template = "annotation/routing_policy.html"
    if request.htmx:
        template += "#routing-preview"
    return render(request, template, context, status=status)


@require_GET
@login_required
def routed_items(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    tasks = (
        ReviewTask.objects.filter(project=project)
        .select_related("sample")
        .annotate(
            llm_offline=Exists(
                LLMAnnotation.objects.filter(sample=OuterRef("sample"), is_current=True, method=LabelMethod.OFFLINE)
            )
        )
        .order_by("-batch", "-priority", "id")
    )
    page = Paginator(tasks, 50).get_page(request.GET.get("page"))
    template = "annotation/routed_items.html"
    if request.htmx:
        template += "#routed-table"
    return render(request, template, {"project": project, "role": Role.LEAD, "page": page})
