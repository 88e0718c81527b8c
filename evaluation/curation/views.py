"""Curation pages (leads only): filters with live counts, snapshots, diffs, exports, label issues, Label
Studio import."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import ReviewTask, TaskKind
from evaluation.api.download_command import download_command
from evaluation.curation import services as curation_services
from evaluation.curation.filters import FILTER_NAMES, PATTERN_RULES, without_unusable_rules
from evaluation.curation.forms import (
    FilterSettingsForm,
    LabelIssuesSendForm,
    LabelStudioImportForm,
    SnapshotForm,
)
from evaluation.curation.snapshots import (
    certificate_figures,
    curation_run,
    curation_settings_get,
    curation_settings_save,
    snapshot_diff,
)
from evaluation.curation.weights import sample_weights_get, sample_weights_save
from evaluation.export.labelstudio import labelstudio_import_job_start, labelstudio_preview_check
from evaluation.export.writers import (
    CONTENT_TYPES,
    INTERCHANGE_DOWNLOADS,
    STREAMED_FORMATS,
    export_filename,
    export_path,
    export_stream,
    slug,
)
from evaluation.interchange.labelstudio import LabelStudioMapping
from evaluation.models import (
    ExportFormat,
    ExportJob,
    JudgeKind,
    JudgeRating,
    LabelStudioImportJob,
    RefinementRun,
    Snapshot,
    SnapshotJob,
)
from synthstudio.access import lead_project
from synthstudio.jobs import worker_alive
from synthstudio.models import JobStatus, Project, Role
from synthstudio.uploads import limit_upload_size, upload_refused

DIFF_ROWS_SHOWN = 200


def _counts_context(project: Project, form: FilterSettingsForm) -> dict:
    if not form.is_valid():
        # the htmx fragment replaces only the counts, so it repeats the field errors it cannot highlight
        errors = [
            (form.fields[name].label if name in form.fields else name, message)
            for name, messages in form.errors.items()
            for message in messages
        ]
        return {"form_errors": True, "filter_errors": errors}
    data, result = curation_run(project=project, settings=form.to_settings())
    counts = result.counts
    return {
        "total": len(data.items),
        "kept": int(result.keep.sum()),
        "filter_rows": [(name, label, counts.get(name, 0)) for name, label in FILTER_NAMES.items()],
        "judged": sum(1 for item in data.items if item.judge_score is not None),
        "offline_judge_ratings": JudgeRating.objects.filter(
            run__project=project, run__kind=JudgeKind.RATING, run__is_offline=True
        )
        .exclude(rating="")
        .exists(),
    }


def _snapshot_for(project: Project, version: int) -> Snapshot:
    return get_object_or_404(Snapshot.objects.ready(), project=project, version=version)


@require_GET
@login_required
def curation(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    settings = curation_settings_get(project=project)
    # a saved pattern RE2 refuses (saved before patterns ran on RE2) is shown as not applied, not a 500
    applied, problems = without_unusable_rules(settings)
    form = SnapshotForm(
        initial={
            **settings.as_dict(),
            "licence": "unknown",
            "sample_weights": sample_weights_get(project=project),
        }
    )
    bound = FilterSettingsForm(applied.as_dict())
    snapshots = Snapshot.objects.ready().filter(project=project).select_related("created_by")
    building = SnapshotJob.objects.filter(project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
    context = {
        "project": project,
        "role": Role.LEAD,
        "form": form,
        "snapshots": snapshots,
        "building": building,
        "rules_not_applied": [(PATTERN_RULES[name], message) for name, message in problems.items()],
        **_counts_context(project, bound),
    }
    return render(request, "evaluation/curation/curation.html", context)


@require_GET
@login_required
def curation_counts(request: HttpRequest, project_id: int) -> HttpResponse:
    """Live counts for the settings in the query string (the form posts here on every change)."""
    project = lead_project(request, project_id)
    filters = FilterSettingsForm(request.GET)
    context = {"project": project, "role": Role.LEAD, **_counts_context(project, filters)}
    if request.htmx:
        return render(request, "evaluation/curation/curation.html#curation-counts", context)
    # a full page: the curation form filled with these settings, counts beside it
    form = SnapshotForm({**request.GET.dict(), "licence": request.GET.get("licence", "unknown")})
    form.is_valid()
    snapshots = Snapshot.objects.ready().filter(project=project).select_related("created_by")
    return render(
        request, "evaluation/curation/curation.html", {**context, "form": form, "snapshots": snapshots}
    )


@require_POST
@login_required
def snapshot_new(request: HttpRequest, project_id: int) -> HttpResponse:
    """Save the filter settings and hand the build to a worker (100k rows take longer than a request)."""
    project = lead_project(request, project_id)
    form = SnapshotForm(request.POST)
    if not form.is_valid():
        snapshots = Snapshot.objects.ready().filter(project=project).select_related("created_by")
        return render(
            request,
            "evaluation/curation/curation.html",
            {
                "project": project,
                "role": Role.LEAD,
                "form": form,
                "snapshots": snapshots,
                "form_errors": True,
            },
            status=400,
        )
    settings = form.to_settings()
    curation_settings_save(project=project, settings=settings)
    if form.cleaned_data["sample_weights"]:
        sample_weights_save(project=project, method=form.cleaned_data["sample_weights"])
    job = curation_services.snapshot_job_start(
        project=project,
        user=request.user,
        settings=settings,
        split_fractions=form.split_fractions(),
        note=form.cleaned_data["note"],
        licence=form.cleaned_data["licence"] or "unknown",
    )
    return redirect("evaluation:snapshot_job", project_id=project.id, job_id=job.pk)


@require_GET
@login_required
def snapshot_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(SnapshotJob.objects.select_related("snapshot"), pk=job_id, project=project)
    return job_page(
        request,
        project,
        job,
        "evaluation/curation/snapshot_job.html",
        "evaluation:snapshot_job_progress",
        snapshot=job.snapshot if job.status == JobStatus.SUCCEEDED else None,
    )


@require_GET
@login_required
def snapshot_job_progress(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(SnapshotJob, pk=job_id, project=project)
    return job_progress_response(request, job, request.path)


@require_GET
@login_required
def snapshot_detail(request: HttpRequest, project_id: int, version: int) -> HttpResponse:
    project = lead_project(request, project_id)
    snapshot = _snapshot_for(project, version)
    others = (
        Snapshot.objects.ready()
        .filter(project=project)
        .exclude(pk=snapshot.pk)
        .values_list("version", flat=True)
    )
    exports = ExportJob.objects.filter(snapshot=snapshot).order_by("-created_at")[:10]
    return render(
        request,
        "evaluation/curation/snapshot_detail.html",
        {
            "project": project,
            "role": Role.LEAD,
            "snapshot": snapshot,
            "others": others,
            "exports": exports,
            "formats": ExportFormat.choices,
            "streamed": sorted(STREAMED_FORMATS),
            "removed": [
                (FILTER_NAMES.get(name, name), count) for name, count in snapshot.removed_counts.items()
            ],
            "label_counts": sorted(snapshot.label_counts.items()),
            "certificate_figures": certificate_figures(snapshot.certificate) if snapshot.certificate else [],
            "filter_settings": json.dumps(snapshot.filter_settings, indent=2),
            "api_download_command": download_command(
                request.build_absolute_uri(
                    reverse("api:snapshot_download", args=[project.id, snapshot.version, "hf"])
                )
            ),
        },
    )


def export_response(snapshot: Snapshot, file_format: str) -> HttpResponse:
    """Stream text formats; serve a written Parquet/HF file. Shared by the pages and the API."""
    filename = export_filename(snapshot, file_format)
    if file_format in STREAMED_FORMATS:
        response = StreamingHttpResponse(
            export_stream(snapshot, file_format), content_type=CONTENT_TYPES[file_format]
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    path = export_path(snapshot, file_format)
    if not path.exists():
        raise Http404("This export has not been written yet.")
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=filename, content_type=CONTENT_TYPES[file_format]
    )


@require_GET
@login_required
def snapshot_download(request: HttpRequest, project_id: int, version: int, file_format: str) -> HttpResponse:
    project = lead_project(request, project_id)
    snapshot = _snapshot_for(project, version)
    if file_format not in ExportFormat.values:
        raise Http404("Unknown export format.")
    if file_format not in STREAMED_FORMATS and not export_path(snapshot, file_format).exists():
        messages.info(request, "Write the file first: it is prepared by a worker.")
        return redirect("evaluation:snapshot_detail", project_id=project.id, version=version)
    return export_response(snapshot, file_format)


@require_GET
@login_required
def snapshot_interchange_download(
    request: HttpRequest, project_id: int, version: int, tool: str
) -> HttpResponse:
    """Another tool's file for the snapshot, streamed: Label Studio's labeling config, Prodigy or doccano
    JSONL, Argilla records.json / settings.json."""
    project = lead_project(request, project_id)
    snapshot = _snapshot_for(project, version)
    if tool not in INTERCHANGE_DOWNLOADS:
        raise Http404("Unknown tool format.")
    writer, content_type, ending = INTERCHANGE_DOWNLOADS[tool]
    response = StreamingHttpResponse(writer(snapshot), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{slug(project.name)}-v{version}-{ending}"'
    return response


@require_POST
@login_required
def export_start(request: HttpRequest, project_id: int, version: int, file_format: str) -> HttpResponse:
    project = lead_project(request, project_id)
    snapshot = _snapshot_for(project, version)
    if file_format not in ExportFormat.values:
        raise Http404("Unknown export format.")
    job = curation_services.export_job_start(snapshot=snapshot, file_format=file_format, user=request.user)
    return redirect("evaluation:export_job", project_id=project.id, job_id=job.pk)


@require_GET
@login_required
def export_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(ExportJob.objects.select_related("snapshot"), pk=job_id, project=project)
    return job_page(
        request,
        project,
        job,
        "evaluation/curation/export_job.html",
        "evaluation:export_job_progress",
        succeeded=job.status == JobStatus.SUCCEEDED,
    )


def job_page(
    request: HttpRequest, project: Project, job, template_name: str, progress_url_name: str, **extra
) -> HttpResponse:
    """A job's full page: the shared progress partial polling `progress_url_name`, plus the page's own context."""
    return render(
        request,
        template_name,
        {
            "project": project,
            "role": Role.LEAD,
            "job": job,
            "worker_alive": worker_alive(),
            "poll_url": reverse(progress_url_name, args=[project.id, job.pk]),
            **extra,
        },
    )


def job_progress_response(request: HttpRequest, job, poll_url: str) -> HttpResponse:
    """The shared progress fragment; once the job ends, htmx reloads the page to show the result."""
    response = render(
        request,
        "synthstudio/_job_progress.html",
        {"job": job, "poll_url": poll_url, "worker_alive": worker_alive()},
    )
    if job.is_finished and request.htmx:
        response["HX-Refresh"] = "true"
    return response


@require_GET
@login_required
def export_job_progress(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(ExportJob, pk=job_id, project=project)
    return job_progress_response(request, job, request.path)


@require_GET
@login_required
def snapshot_compare(request: HttpRequest, project_id: int, version: int) -> HttpResponse:
    project = lead_project(request, project_id)
    new = _snapshot_for(project, version)
    try:
        against = int(request.GET.get("against", ""))
    except ValueError:
        against = new.version - 1
    old = _snapshot_for(project, against)
    diff = snapshot_diff(old=old, new=new)
    return render(
        request,
        "evaluation/curation/snapshot_diff.html",
        {
            "project": project,
            "role": Role.LEAD,
            "old": old,
            "new": new,
            "sides": [old, new],
            "limit": DIFF_ROWS_SHOWN,
            "added": diff.added[:DIFF_ROWS_SHOWN],
            "removed": diff.removed[:DIFF_ROWS_SHOWN],
            "relabelled": diff.relabelled[:DIFF_ROWS_SHOWN],
            "text_changed": diff.text_changed[:DIFF_ROWS_SHOWN],
            "counts": {
                "added": len(diff.added),
                "removed": len(diff.removed),
                "relabelled": len(diff.relabelled),
                "text_changed": len(diff.text_changed),
            },
        },
    )


@require_GET
@login_required
def label_issues(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = RefinementRun.objects.filter(project=project).order_by("-created_at").first()
    queued = set()
    if run and run.result.get("issues"):
        ids = [issue["sample_id"] for issue in run.result["issues"]]
        queued = set(
            ReviewTask.objects.filter(
                project=project, kind=TaskKind.LABEL_ISSUE, is_open=True, sample_id__in=ids
            ).values_list("sample_id", flat=True)
        )
    poll_url = reverse("evaluation:label_issues_progress", args=[project.id, run.pk]) if run else ""
    return render(
        request,
        "evaluation/curation/label_issues.html",
        {
            "project": project,
            "role": Role.LEAD,
            "run": run,
            "queued": queued,
            "worker_alive": worker_alive(),
            "poll_url": poll_url,
        },
    )


@require_GET
@login_required
def label_issues_progress(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(RefinementRun, pk=run_id, project=project)
    return job_progress_response(request, run, request.path)


@require_POST
@login_required
def label_issues_run(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    curation_services.refinement_run_start(project=project, user=request.user)
    return redirect("evaluation:label_issues", project_id=project.id)


@require_POST
@login_required
def label_issues_send(request: HttpRequest, project_id: int, run_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    run = get_object_or_404(RefinementRun, pk=run_id, project=project)
    form = LabelIssuesSendForm(request.POST, issues=run.result.get("issues", []))
    if not form.is_valid():
        messages.error(request, "Choose label issues of this run.")
        return redirect("evaluation:label_issues", project_id=project.id)
    created = curation_services.label_issues_send(run=run, sample_ids=form.cleaned_data["sample"])
    messages.success(request, f"Sent {created} item{'s' if created != 1 else ''} to the review queue.")
    return redirect("evaluation:label_issues", project_id=project.id)


@require_http_methods(["GET", "POST"])
@login_required
@limit_upload_size
def labelstudio_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    """Store the upload and let a worker import it, all or nothing. An upload over IMPORT_MAX_MB is stopped
    while it streams in and answered with 413 and the limit."""
    project = lead_project(request, project_id)
    if refused := upload_refused(request):
        messages.error(request, refused)
        recent = LabelStudioImportJob.objects.filter(project=project).order_by("-created_at")[:5]
        return render(
            request,
            "evaluation/curation/labelstudio_import.html",
            {"project": project, "role": Role.LEAD, "form": LabelStudioImportForm(), "recent": recent},
            status=413,
        )
    form = LabelStudioImportForm(request.POST or None, request.FILES or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        # the mapping step: the first tasks are read here, so a missing text key or an unknown label is
        # answered at once with the keys found and the tasks, before anything is stored
        mapping = LabelStudioMapping.from_dict(form.cleaned_data)
        preview = labelstudio_preview_check(
            project=project, upload=form.cleaned_data["file"], mapping=mapping
        )
        if not preview["error"]:
            job = labelstudio_import_job_start(
                project=project, user=request.user, upload=form.cleaned_data["file"], mapping=mapping
            )
            return redirect("evaluation:labelstudio_import_job", project_id=project.id, job_id=job.pk)
        form.add_error(None, preview["error"])
    recent = LabelStudioImportJob.objects.filter(project=project).order_by("-created_at")[:5]
    return render(
        request,
        "evaluation/curation/labelstudio_import.html",
        {"project": project, "role": Role.LEAD, "form": form, "recent": recent, "preview": preview},
    )


@require_GET
@login_required
def labelstudio_import_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(LabelStudioImportJob, pk=job_id, project=project)
    return job_page(
        request,
        project,
        job,
        "evaluation/curation/labelstudio_import_job.html",
        "evaluation:labelstudio_import_job_progress",
    )


@require_GET
@login_required
def labelstudio_import_job_progress(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(LabelStudioImportJob, pk=job_id, project=project)
    return job_progress_response(request, job, request.path)
