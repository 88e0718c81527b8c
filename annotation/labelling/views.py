"""Lead pages of LLM labelling: start a labelling run and watch it, the label distribution charts, and the
signals run that follows it."""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.forms import LabellingRunForm
from annotation.labelling import refine, services
from annotation.labelling.charts import histogram
from annotation.labelling.forms import RefineRunForm
from annotation.models import LabellingRun, SampleSignals, SignalsRun
from annotation.routing import services as routing_services
from annotation.routing import signals
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import LabelMethod, LLMAnnotation, Project, Role


def _labelling_context(project: Project) -> dict:
    current = LLMAnnotation.objects.filter(sample__project=project, is_current=True)
    label_counts = list(
        current.filter(valid=True).values("label").annotate(count=Count("id")).order_by("-count", "label")
    )
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
            histogram(
                "Entropy of the label distribution (nats)",
                entropies,
                low=0.0,
                high=math.log(max(2, label_total)),
            ),
        ],
        "runs": LabellingRun.objects.filter(project=project).order_by("-created_at")[:10],
        "signals": signals.signals_progress(project=project),
        "policy_saved": routing_services.routing_policy_saved(project=project),
        "worker_alive": worker_alive(),
    }


@require_GET
@login_required
def labelling_overview(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = LabellingRunForm(project=project)
    context = {
        "project": project,
        "role": Role.LEAD,
        "form": form,
        "refine_form": RefineRunForm(project=project),
        **_labelling_context(project),
    }
    template = "annotation/labelling_overview.html"
    if request.htmx:
        template += "#labelling-summary"
    return render(request, template, context)


def _run_form_invalid(request: HttpRequest, project, *, form, refine_form) -> HttpResponse:
    """The labelling page again with the posted form's errors (or the missing codebook), answered 400."""
    posted = refine_form if refine_form.is_bound else form
    if project.codebook is None:
        posted.add_error(None, "Write the codebook first: the LLM labels with the codebook humans read.")
    context = {
        "project": project,
        "role": Role.LEAD,
        "form": form,
        "refine_form": refine_form,
        **_labelling_context(project),
    }
    return render(request, "annotation/labelling_overview.html", context, status=400)


@require_POST
@login_required
def labelling_run_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = LabellingRunForm(request.POST, project=project)
    if not form.is_valid() or project.codebook is None:
        return _run_form_invalid(request, project, form=form, refine_form=RefineRunForm(project=project))
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


@require_POST
@login_required
def refine_run_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = RefineRunForm(request.POST, project=project)
    if not form.is_valid() or project.codebook is None:
        return _run_form_invalid(request, project, form=LabellingRunForm(project=project), refine_form=form)
    data = form.cleaned_data
    run = refine.refine_run_start(
        project=project,
        user=request.user,
        method=data["method"],
        endpoint=data["endpoint"],
        max_passes=data["max_passes"],
        demos_per_class=data["demos_per_class"],
        samples_per_item=data["samples_per_item"],
        temperature=data["temperature"],
    )
    messages.success(request, f"Refine run {run.pk} started" + (" (offline)." if run.is_offline else "."))
    return redirect("annotation:labelling_run_detail", project_id=project.id, run_id=run.pk)


@require_GET
@login_required
def labelling_run_detail(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(LabellingRun, pk=run_id, project=project)
    recent = LLMAnnotation.objects.filter(run_ref=run.run_ref).select_related("sample").order_by("-id")[:20]
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
        messages.info(
            request, f"Labelling run {run.pk} is finished or a live worker is running it: nothing to resume."
        )
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
    run = signals.signals_run_start(project=project, user=request.user)
    messages.success(request, "Computing embeddings and routing signals.")
    return redirect("annotation:signals_run_progress", project_id=project.id, run_id=run.pk)


@require_GET
@login_required
def signals_run_progress(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(SignalsRun, pk=run_id, project=project)
    context = {
        "project": project,
        "role": Role.LEAD,
        "job": run,
        "worker_alive": worker_alive(),
        "poll_url": request.path,
    }
    template = "annotation/signals_run_progress.html"
    if request.htmx:
        template += "#progress"
    return render(request, template, context)
