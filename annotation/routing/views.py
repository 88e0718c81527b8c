"""Lead pages of routing: the routing policy with a preview of what it would route, and the routed items with
their reasons."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.forms import RoutingPolicyForm
from annotation.models import ReviewTask, RoutingStrategy
from annotation.routing import services
from annotation.routing.quality_target import quality_target_progress
from annotation.routing.signals import signals_progress
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import LabelMethod, LLMAnnotation, Role


@require_http_methods(["GET", "POST"])
@login_required
def routing_policy(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the policy form and a preview of the current policy. POST with `preview`, and every htmx POST: the
    preview of the submitted (unsaved) policy. A plain (non-htmx) POST with `save`: save it (and `route_now`:
    route the next batch).

    htmx requests never save or route: the live preview (hx-trigger="change") may be queued behind an earlier
    one and only sent after the lead clicked a button, and htmx then adds that button's name to the preview's
    values, so a preview carrying `route_now` routed a second batch next to the form's own submit."""
    project = lead_project(request, project_id)
    policy = services.routing_policy_for(project=project)
    form = RoutingPolicyForm(request.POST or None, instance=policy)
    preview_policy = policy
    if request.method == "POST":
        if not form.is_valid():
            return _render_routing(request, project, form, policy, preview=[], status=400)
        if not request.htmx and ("save" in request.POST or "route_now" in request.POST):
            saved = form.save(commit=False)
            saved.updated_by = request.user
            saved.save()
            if "route_now" in request.POST:
                tasks = services.routing_route_next_batch(project=project)
                if not tasks and saved.strategy == RoutingStrategy.QUALITY_TARGET:
                    messages.success(
                        request, "Policy saved; the quality target has nothing to route now (below)."
                    )
                else:
                    messages.success(request, _routed_message(len(tasks)))
            else:
                messages.success(request, "Routing policy saved.")
            return redirect("annotation:routing_policy", project_id=project.id)
        preview_policy = form.save(commit=False)  # preview only: not saved
    preview = services.routing_preview(project=project, policy=preview_policy)
    return _render_routing(request, project, form, preview_policy, preview=preview)


def _routed_message(routed: int) -> str:
    if routed == 0:
        return "Policy saved; nothing routed: the budget is spent or no unrouted items remain."
    return f"Policy saved; routed {routed} item{'' if routed == 1 else 's'} to the review queue."


def _render_routing(request, project, form, policy, *, preview, status: int = 200) -> HttpResponse:
    state = services.routing_state(project=project, policy=policy)
    context = {
        "project": project,
        "role": Role.LEAD,
        "form": form,
        "preview": preview,
        "state": state,
        "policy": policy,
        "worker_alive": worker_alive() if policy.next_batch_queued_at else True,
        "signals": signals_progress(project=project),
        "policy_saved": services.routing_policy_saved(project=project),
        # the quality target's panel (not part of the htmx preview partial)
        "quality": quality_target_progress(project=project, policy=policy)
        if policy.strategy == RoutingStrategy.QUALITY_TARGET and not request.htmx
        else None,
    }
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
                LLMAnnotation.objects.filter(
                    sample=OuterRef("sample"), is_current=True, method=LabelMethod.OFFLINE
                )
            )
        )
        .order_by("-batch", "-priority", "id")
    )
    page = Paginator(tasks, 50).get_page(request.GET.get("page"))
    template = "annotation/routed_items.html"
    if request.htmx:
        template += "#routed-table"
    return render(request, template, {"project": project, "role": Role.LEAD, "page": page})
