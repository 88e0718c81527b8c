"""The samples page's bulk actions (POST) and the progress page of one that runs as a background job."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from annotation.samples.actions import INLINE_LIMIT, sample_action_start
from synthstudio.access import lead_project
from synthstudio.forms import SampleSearchForm
from synthstudio.jobs import worker_alive
from synthstudio.models import Role, SampleAction, SampleActionJob


@require_POST
@login_required
def sample_action(request: HttpRequest, project_id: int) -> HttpResponse:
    """One bulk action on the ticked samples (`sample`), or with scope=all on every sample matching the filter
    carried in the form's hidden fields. Goes back to the list with the same filter."""
    project = lead_project(request, project_id)
    codebook = project.codebook
    search_form = SampleSearchForm(request.POST, label_names=codebook.label_names if codebook else [])
    search = search_form.search()
    back = reverse("sample_list", args=[project.id])
    if search.as_dict():
        back += "?" + urlencode(search.as_dict())
    action = request.POST.get("action", "")
    if action not in SampleAction.values:
        messages.error(request, "Choose one of the actions.")
        return redirect(back)
    if search_form.errors:
        messages.error(request, "The filter has an invalid value; nothing was changed.")
        return redirect(back)
    if request.POST.get("scope") == "all":
        result = sample_action_start(project=project, user=request.user, action=action, search=search)
    else:
        ids = [int(value) for value in request.POST.getlist("sample") if value.isdigit()]
        if not ids:
            messages.error(request, "Tick some samples first, or choose “all matching the filter”.")
            return redirect(back)
        result = sample_action_start(project=project, user=request.user, action=action, sample_ids=ids)
    if isinstance(result, SampleActionJob):
        messages.success(
            request,
            f"More than {INLINE_LIMIT} samples: “{result.get_action_display()}” runs as a background job "
            f"over {result.total} samples.",
        )
        return redirect("annotation:sample_action_job", project_id=project.id, job_id=result.pk)
    messages.success(request, result.message)
    return redirect(back)


@require_GET
@login_required
def sample_action_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(SampleActionJob, pk=job_id, project=project)
    template = "annotation/samples/action_job.html"
    if request.htmx:
        template += "#action-job"
    return render(
        request,
        template,
        {
            "project": project,
            "role": Role.LEAD,
            "job": job,
            "worker_alive": worker_alive(),
            "poll_url": reverse("annotation:sample_action_job", args=[project.id, job.id]),
        },
    )
