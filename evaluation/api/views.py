"""HTTP API for ML engineers: list a project's snapshots and download one in any export format.

Authentication: `Authorization: Bearer <token>` with a per-user token from /api/tokens/ (a logged-in browser
session works too). Access rules are the pages': non-members get 404, and only the project's leads may list
or download snapshots (annotators get 403) — curated exports are a lead's deliverable, the safe default.

Downloads: JSONL, CSV and Label Studio JSON stream at once. Parquet and the Hugging Face zip are written by a
worker the first time they are asked for: until the file exists the download URL answers 202 Accepted with
`{"job", "status", "done", "total", "error", "poll", "download", "retry_after_seconds"}` and a Retry-After
header; poll `poll` (GET, same token) until `status` is "succeeded", then GET `download` again for the file.
A written file answers 200 at once; when the last export job failed, the answer is 500 with its error (and
a new job is queued, so the next request tries again). evaluation.api.download_command is the documented shell loop over these answers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from evaluation.curation import services as curation_services
from evaluation.curation.forms import ApiTokenForm
from evaluation.curation.views import export_response
from evaluation.export.writers import STREAMED_FORMATS, export_path
from evaluation.models import ApiToken, ExportFormat, ExportJob, Snapshot
from synthstudio import throttling
from synthstudio.access import project_for_user
from synthstudio.jobs import worker_alive
from synthstudio.models import JobStatus, Membership


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate by token (or session) and turn access errors into JSON with the right status."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header:
            # Token guessing is throttled per IP address like passwords (synthstudio.throttling): while locked
            # out even a valid token is refused, and the failure that reaches the limit becomes a 429.
            if throttling.api_token_locked(request):
                return throttling.lockout_response(request, None, throttling.api_token_credentials())
            scheme, _, raw = header.partition(" ")
            user = (
                curation_services.api_token_user(raw=raw.strip())
                if scheme.lower() in {"bearer", "token"}
                else None
            )
            if user is None:
                throttling.api_token_failed(request)
                return JsonResponse({"error": "Invalid or revoked API token."}, status=401)
            request.user = user
        elif not request.user.is_authenticated:
            return JsonResponse(
                {"error": "Send 'Authorization: Bearer <token>' (create one at /api/tokens/)."}, status=401
            )
        try:
            return view(request, *args, **kwargs)
        except Http404 as error:
            return JsonResponse({"error": str(error) or "Not found."}, status=404)
        except PermissionDenied as error:
            return JsonResponse({"error": str(error) or "Forbidden."}, status=403)

    return wrapper


POLL_SECONDS = 2


def _ready_snapshot(project, version: int) -> Snapshot:
    snapshot = Snapshot.objects.ready().filter(project=project, version=version).first()
    if snapshot is None:
        raise Http404("No such snapshot.")
    return snapshot


def snapshot_json(request: HttpRequest, snapshot: Snapshot) -> dict:
    return {
        "version": snapshot.version,
        "created_at": snapshot.created_at.isoformat(),
        "note": snapshot.note,
        "items": snapshot.item_count,
        "label_counts": snapshot.label_counts,
        "label_policy": snapshot.label_policy,
        "codebook_version": snapshot.codebook_version,
        "filter_settings": snapshot.filter_settings,
        "split_fractions": snapshot.split_fractions,
        "licence": snapshot.licence,
        "certificate": snapshot.certificate or None,
        "downloads": {
            file_format: request.build_absolute_uri(
                reverse("api:snapshot_download", args=[snapshot.project_id, snapshot.version, file_format])
            )
            for file_format in ExportFormat.values
        },
    }


@require_GET
@api_view
def projects(request: HttpRequest) -> HttpResponse:
    rows = Membership.objects.filter(user=request.user).select_related("project").order_by("project_id")
    return JsonResponse(
        {"projects": [{"id": m.project_id, "name": m.project.name, "role": m.role} for m in rows]}
    )


@require_GET
@api_view
def snapshots(request: HttpRequest, project_id: int) -> HttpResponse:
    project, _ = project_for_user(request, project_id, lead=True)
    rows = Snapshot.objects.ready().filter(project=project).order_by("-version")
    return JsonResponse({"project": project.id, "snapshots": [snapshot_json(request, s) for s in rows]})


@require_GET
@api_view
def snapshot_detail(request: HttpRequest, project_id: int, version: int) -> HttpResponse:
    project, _ = project_for_user(request, project_id, lead=True)
    return JsonResponse(snapshot_json(request, _ready_snapshot(project, version)))


@require_GET
@api_view
def snapshot_download(request: HttpRequest, project_id: int, version: int, file_format: str) -> HttpResponse:
    """Text formats stream at once. Parquet and the HF zip are files a worker writes: while one is not ready
    the answer is 202 with a JSON body naming the job to poll (and a Retry-After header); once written, this
    same URL serves the file."""
    project, _ = project_for_user(request, project_id, lead=True)
    snapshot = _ready_snapshot(project, version)
    if file_format not in ExportFormat.values:
        raise Http404(f"Unknown format; use one of {', '.join(ExportFormat.values)}.")
    if file_format not in STREAMED_FORMATS and not export_path(snapshot, file_format).exists():
        latest = ExportJob.objects.filter(snapshot=snapshot, file_format=file_format).order_by("-pk").first()
        job = curation_services.export_job_start(
            snapshot=snapshot, file_format=file_format, user=request.user
        )
        if not export_path(
            snapshot, file_format
        ).exists():  # an eager (test) worker may have written it already
            if latest is not None and latest.status == JobStatus.FAILED:
                # Said once, as an error, so a client asking again while it sees 202 stops; the new job
                # export_job_start queued makes the next request a fresh attempt.
                return JsonResponse({**export_job_json(request, latest), "retry_job": job.pk}, status=500)
            response = JsonResponse(export_job_json(request, job), status=202)
            response["Retry-After"] = str(POLL_SECONDS)
            return response
    return export_response(snapshot, file_format)


@require_GET
@api_view
def export_job(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """The state of an export job started by a download request."""
    project, _ = project_for_user(request, project_id, lead=True)
    job = ExportJob.objects.select_related("snapshot").filter(project=project, pk=job_id).first()
    if job is None:
        raise Http404("No such export job.")
    return JsonResponse(export_job_json(request, job))


def export_job_json(request: HttpRequest, job: ExportJob) -> dict:
    snapshot = job.snapshot
    return {
        "job": job.pk,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "error": job.error,
        "worker_alive": worker_alive(),
        "poll": request.build_absolute_uri(reverse("api:export_job", args=[snapshot.project_id, job.pk])),
        "download": request.build_absolute_uri(
            reverse("api:snapshot_download", args=[snapshot.project_id, snapshot.version, job.file_format])
        ),
        "retry_after_seconds": POLL_SECONDS,
    }


@require_http_methods(["GET", "POST"])
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    new_token = ""
    if request.method == "POST" and form.is_valid():
        _, new_token = curation_services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiTokenForm()
    rows = ApiToken.objects.filter(user=request.user)
    return render(
        request, "evaluation/curation/api_tokens.html", {"form": form, "tokens": rows, "new_token": new_token}
    )


@require_POST
@login_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    if curation_services.api_token_revoke(user=request.user, token_id=token_id):
        messages.success(request, "Token revoked.")
    else:
        raise Http404("No such token.")
    return redirect("api:tokens")
