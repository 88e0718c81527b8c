"""Views of the generation app (project leads): endpoints, configs, prompt preview, runs with progress,
rounds and value proposals, and the outputs viewer. Annotators get 403, outsiders 404."""

from __future__ import annotations

from collections import Counter

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from generation.conditions import condition_filter_parse
from generation.forms import (
    EndpointForm,
    GenerationConfigForm,
    NextRoundForm,
    ProposalDecideForm,
    ProposalsRequestForm,
    RunStartForm,
)
from generation.llm.client import ErrorKind, check_connection
from generation.models import (
    ConditionValueProposal,
    GenerationConfig,
    GenerationItem,
    GenerationRun,
    ItemStatus,
    LLMEndpoint,
    ProposalStatus,
)
from generation.services import configs as config_services
from generation.services import endpoints as endpoint_services
from generation.services import outputs as output_services
from generation.services import proposals as proposal_services
from generation.services import rounds as round_services
from generation.services import runs as run_services
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import Role


def _context(project, **extra) -> dict:
    return {"project": project, "role": Role.LEAD, **extra}


def _config_for(project, config_id: int) -> GenerationConfig:
    return get_object_or_404(
        GenerationConfig.objects.select_related("endpoint", "codebook"), pk=config_id, project=project
    )


def _run_for(project, run_id: int) -> GenerationRun:
    return get_object_or_404(
        GenerationRun.objects.select_related("config", "endpoint"), pk=run_id, project=project
    )


# -- overview ---------------------------------------------------------------------------------------------


@require_GET
@login_required
def generation_home(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    endpoint_services.endpoint_sync_from_environment()  # idempotent: mirrors LLM_BASE_URL as a global endpoint
    runs = GenerationRun.objects.filter(project=project).select_related("config").order_by("-created_at")[:20]
    return render(
        request,
        "generation/home.html",
        _context(
            project,
            configs=config_services.configs_latest(project),
            runs=runs,
            has_codebook=project.codebook is not None,
        ),
    )


# -- endpoints --------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def endpoint_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    endpoint_services.endpoint_sync_from_environment()
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = form.save(commit=False)
        endpoint.project = project
        endpoint.save()
        messages.success(request, f"Endpoint {endpoint.name} saved.")
        return redirect("generation:endpoint_list", project_id=project.id)
    endpoints = LLMEndpoint.objects.usable_in(project)
    return render(request, "generation/endpoints.html", _context(project, endpoints=endpoints, form=form))


@require_http_methods(["GET", "POST"])
@login_required
def endpoint_edit(request: HttpRequest, project_id: int, endpoint_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    endpoint = get_object_or_404(LLMEndpoint, pk=endpoint_id, project=project)  # global ones: admin only
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        form.save()
        dropped = (
            " The stored key was removed because the base URL or model changed: enter it again."
            if form.key_dropped
            else ""
        )
        messages.success(request, f"Endpoint {endpoint.name} saved.{dropped}")
        return redirect("generation:endpoint_list", project_id=project.id)
    return render(request, "generation/endpoint_edit.html", _context(project, endpoint=endpoint, form=form))


@require_POST
@login_required
def endpoint_test(request: HttpRequest, project_id: int, endpoint_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    endpoint = get_object_or_404(LLMEndpoint.objects.usable_in(project), pk=endpoint_id)
    ok, message = check_connection(endpoint)
    template = (
        "generation/endpoints.html#connection-result" if request.htmx else "generation/connection_result.html"
    )
    return render(request, template, _context(project, endpoint=endpoint, ok=ok, result_message=message))


# -- configs ----------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def config_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    endpoint_services.endpoint_sync_from_environment()
    return _config_form(request, project, None)


@require_http_methods(["GET", "POST"])
@login_required
def config_edit(request: HttpRequest, project_id: int, config_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    return _config_form(request, project, _config_for(project, config_id))


def _config_form(request: HttpRequest, project, config: GenerationConfig | None) -> HttpResponse:
    initial = GenerationConfigForm.initial_from(config) if config else {}
    form = GenerationConfigForm(request.POST or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = config_services.config_create_version(
                project=project,
                user=request.user,
                name=form.cleaned_data["name"],
                values=form.config_values(),
            )
        except ValidationError as error:
            for problem in error.messages:
                form.add_error(None, problem)
        else:
            messages.success(request, f"Saved {saved.name} v{saved.version}.")
            return redirect("generation:config_detail", project_id=project.id, config_id=saved.id)
    return render(request, "generation/config_form.html", _context(project, form=form, config=config))


@require_GET
@login_required
def config_detail(request: HttpRequest, project_id: int, config_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    config = _config_for(project, config_id)
    versions = GenerationConfig.objects.filter(project=project, name=config.name).values_list(
        "id", "version", "created_at"
    )
    runs = GenerationRun.objects.filter(config__project=project, config__name=config.name).select_related(
        "config"
    )[:20]
    proposals = ConditionValueProposal.objects.filter(
        config__project=project, config__name=config.name, status=ProposalStatus.PENDING
    )
    return render(
        request,
        "generation/config_detail.html",
        _context(
            project,
            config=config,
            versions=versions,
            runs=runs,
            proposals=proposals,
            run_form=RunStartForm(),
            dimension_names=[d["name"] for d in config.dimensions],
        ),
    )


@require_GET
@login_required
def config_preview(request: HttpRequest, project_id: int, config_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    config = _config_for(project, config_id)
    preview = config_services.config_preview(config=config, count=5)
    return render(request, "generation/preview.html", _context(project, config=config, preview=preview))


@require_POST
@login_required
def run_start(request: HttpRequest, project_id: int, config_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    config = _config_for(project, config_id)
    form = RunStartForm(request.POST)
    count = form.cleaned_data.get("count") if form.is_valid() else None
    shards = form.cleaned_data["shards"] if form.is_valid() else 1
    run = run_services.run_start(config=config, user=request.user, count=count, shards=shards)
    spread = f" over {run.shard_count} workers" if run.shard_count > 1 else ""
    messages.success(request, f"Run {run.pk} queued ({run.total} requests{spread}).")
    return redirect("generation:run_detail", project_id=project.id, run_id=run.pk)


@require_POST
@login_required
def proposals_request(request: HttpRequest, project_id: int, config_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    config = _config_for(project, config_id)
    form = ProposalsRequestForm(request.POST, config=config)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["dimension"]))
        return redirect("generation:config_detail", project_id=project.id, config_id=config.pk)
    try:
        made = proposal_services.proposals_request(config=config, dimension=form.cleaned_data["dimension"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{len(made)} new values proposed; review them before they are used.")
    return redirect("generation:config_detail", project_id=project.id, config_id=config.pk)


@require_POST
@login_required
def proposal_decide(request: HttpRequest, project_id: int, proposal_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    proposal = get_object_or_404(
        ConditionValueProposal.objects.select_related("config"), pk=proposal_id, config__project=project
    )
    accept = ProposalDecideForm(request.POST).accepted()
    new_version = proposal_services.proposal_decide(proposal=proposal, accept=accept, user=request.user)
    if new_version:
        messages.success(request, f"Added {proposal.value!r} to {proposal.dimension}: saved {new_version}.")
        return redirect("generation:config_detail", project_id=project.id, config_id=new_version.pk)
    messages.info(request, f"Rejected {proposal.value!r}." if not accept else "Already decided.")
    return redirect("generation:config_detail", project_id=project.id, config_id=proposal.config_id)


# -- runs -------------------------------------------------------------------------------------------------


@require_GET
@login_required
def run_detail(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = _run_for(project, run_id)
    rate, eta = run_services.run_rate_and_eta(run)
    failures = (
        GenerationItem.objects.filter(run=run, status=ItemStatus.FAILED)
        .only("id", "index", "parse_status", "error")
        .order_by("-finished_at")[:20]
    )
    failures = list(failures)
    for item in failures:
        item.reason = ErrorKind.LABELS.get(item.parse_status, item.parse_status)
    template = "generation/run_detail.html" + ("#progress" if request.htmx else "")
    return render(
        request,
        template,
        _context(
            project,
            run=run,
            job=run,
            rate=rate,
            eta=eta,
            failures=failures,
            error_labels=ErrorKind.LABELS,
            poll_url=reverse("generation:run_detail", args=[project.id, run.pk]),
            worker_alive=worker_alive(),
            stalled=run_services.run_is_stalled(run),
            next_round_form=NextRoundForm(),
        ),
    )


@require_POST
@login_required
def run_cancel(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run_services.run_cancel(run=_run_for(project, run_id))
    messages.info(request, "Run cancelled; finished items are kept.")
    return redirect("generation:run_detail", project_id=project.id, run_id=run_id)


@require_POST
@login_required
def run_resume(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = _run_for(project, run_id)
    if run.status == "succeeded":
        messages.info(request, "The run has finished; nothing to resume.")
    else:
        run_services.run_resume(run=run)
        messages.success(request, "Run resumed: finished items are skipped.")
    return redirect("generation:run_detail", project_id=project.id, run_id=run_id)


@require_POST
@login_required
def run_next_round(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = _run_for(project, run_id)
    form = NextRoundForm(request.POST)
    strength = form.cleaned_data["strength"] if form.is_valid() else 1.0
    new_run = round_services.run_next_round(run=run, user=request.user, strength=strength)
    messages.success(
        request, f"Round {new_run.round_number} queued with weights moved toward the weakest conditions."
    )
    return redirect("generation:run_detail", project_id=project.id, run_id=new_run.pk)


# -- outputs ----------------------------------------------------------------------------------------------


@require_GET
@login_required
def outputs(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    items = GenerationItem.objects.filter(run__project=project).exclude(status=ItemStatus.PENDING)
    run_id = request.GET.get("run", "")
    if run_id.isascii() and run_id.isdigit():  # "²".isdigit() is True and int("²") raises
        items = items.filter(run_id=int(run_id))
    condition = request.GET.get("condition", "")
    condition_filter = condition_filter_parse(condition, output_services.condition_names(project=project))
    if condition_filter.applies:
        items = output_services.items_with_condition(
            items, name=condition_filter.name, value=condition_filter.value
        )
    label = request.GET.get("label", "")
    if label:
        items = items.filter(label=label)
    parse_status = request.GET.get("parse", "")
    if parse_status:
        items = items.filter(parse_status=parse_status)
    summary = list(items.values_list("conditions", "label", "parse_status"))
    condition_counts: Counter = Counter()
    for conditions, _, _ in summary:
        condition_counts.update(f"{name}={value}" for name, value in (conditions or {}).items())
    label_counts = Counter(lbl for _, lbl, _ in summary if lbl)
    parse_counts = Counter(status for _, _, status in summary)
    page = Paginator(
        items.select_related("run").prefetch_related("samples").order_by("-run_id", "index"), 50
    ).get_page(request.GET.get("page"))
    runs = (
        GenerationRun.objects.filter(project=project)
        .order_by("-created_at")
        .values_list("id", "model_name")[:50]
    )
    template = "generation/outputs.html" + ("#output-table" if request.htmx else "")
    return render(
        request,
        template,
        _context(
            project,
            page=page,
            runs=runs,
            run_filter=run_id,
            condition_filter=condition,
            label_filter=label,
            condition_ignored=condition_filter.ignored,
            parse_filter=parse_status,
            condition_counts=sorted(condition_counts.items()),
            label_counts=sorted(label_counts.items()),
            parse_counts=sorted(parse_counts.items()),
            total=len(summary),
            error_labels=ErrorKind.LABELS,
        ),
    )


@require_GET
@login_required
def output_detail(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    item = get_object_or_404(
        GenerationItem.objects.select_related("run__config"), pk=item_id, run__project=project
    )
    template = "generation/output_detail.html" + ("#item-detail" if request.htmx else "")
    return render(request, template, _context(project, item=item, samples=item.samples.all()))
