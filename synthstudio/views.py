"""Core pages: project list, project overview and settings, codebook, members, samples, worker status."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from synthstudio import importing, invitations, jobs, services
from synthstudio.access import lead_project, may_create_projects, project_for_user
from synthstudio.forms import (
    CodebookForm,
    ImportMappingForm,
    ImportUploadForm,
    InvitationForm,
    InvitationSignupForm,
    LabelFormSet,
    MemberForm,
    ProjectForm,
    ProjectSettingsForm,
    SampleSearchForm,
)
from synthstudio.jobs import worker_alive
from synthstudio.models import (
    ImportJob,
    Invitation,
    LLMAnnotation,
    Membership,
    Project,
    Role,
    Sample,
    SampleAction,
)
from synthstudio.sample_search import samples_for_list
from synthstudio.uploads import limit_upload_size, upload_refused

SAMPLES_PER_PAGE = 50


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = (
        Project.objects.for_user(request.user)
        .annotate(sample_count=Count("samples", distinct=True))
        .order_by("-created_at")
    )
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    rows = [(project, roles.get(project.id)) for project in projects]
    return render(
        request,
        "synthstudio/home.html",
        {"rows": rows, "can_create_project": may_create_projects(request.user)},
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    if not may_create_projects(request.user):
        raise PermissionDenied("Only staff can create projects here; ask an administrator.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = services.project_create(
            name=form.cleaned_data["name"], description=form.cleaned_data["description"], user=request.user
        )
        messages.success(request, "Project created. Write its codebook next.")
        return redirect("codebook_edit", project_id=project.id)
    return render(request, "synthstudio/project_new.html", {"form": form})


@require_GET
@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = project_for_user(request, project_id)
    counts = Sample.objects.filter(project=project).aggregate(
        total=Count("id"),
        generated=Count("id", filter=Q(origin="generated")),
        human=Count("id", filter=Q(final_source__in=["human", "adjudicated"])),
    )
    # The number Labelling shows: samples with a current LLM label (valid or not), reviewed ones included. Not
    # final_source="llm", which leaves out every sample a human has verified since (244 against 259).
    counts["llm"] = LLMAnnotation.objects.filter(sample__project=project, is_current=True).count()
    return render(
        request,
        "synthstudio/project_detail.html",
        {"project": project, "role": role, "counts": counts, "codebook": project.codebook},
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = ProjectSettingsForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("project_detail", project_id=project.id)
    return render(
        request, "synthstudio/project_settings.html", {"project": project, "role": Role.LEAD, "form": form}
    )


@require_GET
@login_required
def codebook_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project, role = project_for_user(request, project_id)
    codebook = project.codebook
    versions = project.codebooks.values_list("version", "created_at")
    return render(
        request,
        "synthstudio/codebook_detail.html",
        {"project": project, "role": role, "codebook": codebook, "versions": versions},
    )


@require_http_methods(["GET", "POST"])
@login_required
def codebook_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    current = project.codebook
    if request.method == "POST":
        form = CodebookForm(request.POST)
        labels = LabelFormSet(request.POST, prefix="labels")
        if form.is_valid() and labels.is_valid():
            codebook = services.codebook_create_version(
                project=project,
                user=request.user,
                task_description=form.cleaned_data["task_description"],
                guidelines=form.cleaned_data["guidelines"],
                labels=labels.labels,
            )
            messages.success(request, f"Saved codebook version {codebook.version}.")
            return redirect("codebook_detail", project_id=project.id)
    else:
        initial = {}
        label_initial = []
        if current:
            initial = {"task_description": current.task_description, "guidelines": current.guidelines}
            label_initial = [
                {
                    "name": label.name,
                    "description": label.description,
                    "examples": "\n".join(label.examples),
                    "hotkey": label.hotkey,
                }
                for label in current.labels.all()
            ]
        form = CodebookForm(initial=initial)
        labels = LabelFormSet(initial=label_initial, prefix="labels")
    return render(
        request,
        "synthstudio/codebook_edit.html",
        {"project": project, "role": Role.LEAD, "form": form, "labels": labels, "current": current},
    )


@require_http_methods(["GET", "POST"])
@login_required
def members(request: HttpRequest, project_id: int) -> HttpResponse:
    """Members and pending invitations. Two forms, told apart by the button's name: `invite` makes an
    invitation (its link is shown once, here, when it is not mailed), otherwise a member's role is set."""
    project = lead_project(request, project_id)
    inviting = request.method == "POST" and "invite" in request.POST
    form = MemberForm(request.POST if request.method == "POST" and not inviting else None)
    invite_form = InvitationForm(request.POST if inviting else None, project=project)
    new_invitation = None
    if inviting and invite_form.is_valid():
        try:
            new_invitation = invitations.invitation_create(
                project=project,
                user=request.user,
                role=invite_form.cleaned_data["role"],
                email=invite_form.email,
                invitee=invite_form.user,
                accept_url=lambda token: request.build_absolute_uri(
                    reverse("invitation_accept", args=[token])
                ),
            )
        except OSError as error:  # SMTP refused or unreachable: nothing was kept
            invite_form.add_error(None, f"The invitation could not be mailed ({error}); nothing was saved.")
        else:
            invite_form = InvitationForm(project=project)
    elif request.method == "POST" and not inviting and form.is_valid():
        user = get_user_model().objects.get(username=form.cleaned_data["username"])
        try:
            services.membership_set(project=project, user=user, role=form.cleaned_data["role"])
        except ValidationError as error:
            form.add_error("role", error)
        else:
            messages.success(
                request, f"{user.username} is now {form.cleaned_data['role']} of {project.name}."
            )
            return redirect("members", project_id=project.id)
    memberships = list(project.memberships.select_related("user"))
    lead_count = sum(1 for membership in memberships if membership.role == Role.LEAD)
    return render(
        request,
        "synthstudio/members.html",
        {
            "project": project,
            "role": Role.LEAD,
            "form": form,
            "invite_form": invite_form,
            "new_invitation": new_invitation,
            "new_invitation_link": new_invitation
            and request.build_absolute_uri(reverse("invitation_accept", args=[new_invitation.token])),
            "pending_invitations": project.invitations.pending().select_related("invitee", "created_by"),
            "mail_configured": invitations.mail_configured(),
            "memberships": memberships,
            "lead_count": lead_count,
        },
    )


@require_POST
@login_required
def invitation_revoke(request: HttpRequest, project_id: int, invitation_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    invitation = get_object_or_404(Invitation, pk=invitation_id, project=project)
    if invitations.invitation_revoke(invitation=invitation):
        messages.success(request, f"Withdrew the invitation of {invitation.invited_name}.")
    else:
        messages.error(request, "That invitation was already used or withdrawn.")
    return redirect("members", project_id=project.id)


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Public (the link is the credential): shows whom the invitation is from and lets a logged-in user join,
    a person invited by email create an account, or anyone log in first. An unusable link says why."""
    try:
        invitation = invitations.invitation_for_token(token)
    except invitations.InvitationInvalid as problem:
        return render(
            request, "registration/invitation_invalid.html", {"problem": str(problem)}, status=problem.status
        )
    user = request.user
    wrong_account = (
        invitations.invitation_wrong_account(invitation=invitation, user=user)
        if user.is_authenticated
        else ""
    )
    signup_form = None
    if not user.is_authenticated and not invitation.invitee_id:
        signup_form = InvitationSignupForm(request.POST or None)
    if request.method == "POST":
        try:
            if user.is_authenticated:
                invitations.invitation_accept(invitation=invitation, user=user)
            elif signup_form is not None and signup_form.is_valid():
                user = invitations.invitation_signup(
                    invitation=invitation,
                    username=signup_form.cleaned_data["username"],
                    password=signup_form.cleaned_data["password1"],
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                user = None
        except invitations.InvitationInvalid as problem:
            return render(
                request,
                "registration/invitation_invalid.html",
                {"problem": str(problem)},
                status=problem.status,
            )
        if user is not None:
            messages.success(
                request, f"Welcome to {invitation.project.name}: you joined as {invitation.role}."
            )
            return redirect("project_detail", project_id=invitation.project_id)
    return render(
        request,
        "registration/invitation_accept.html",
        {
            "invitation": invitation,
            "signup_form": signup_form,
            "wrong_account": wrong_account,
            "login_url": f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}",
            "logout_next": request.get_full_path(),
        },
    )


@require_POST
@login_required
def member_remove(request: HttpRequest, project_id: int, membership_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, project=project
    )
    try:
        services.membership_remove(project=project, membership=membership)
    except ValidationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed {membership.user.username}.")
    return redirect("members", project_id=project.id)


@require_GET
@login_required
def sample_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """Search and filters (synthstudio.sample_search), 50 a page; the bulk actions post to annotation.samples."""
    project = lead_project(request, project_id)
    codebook = project.codebook
    search_form = SampleSearchForm(request.GET, label_names=codebook.label_names if codebook else [])
    search = search_form.search()
    samples = samples_for_list(project=project, search=search)
    page = Paginator(samples, SAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    template = "synthstudio/sample_list.html"
    if request.htmx:
        template += "#sample-table"
    return render(
        request,
        template,
        {
            "project": project,
            "role": Role.LEAD,
            "page": page,
            "search_form": search_form,
            "search": search.as_dict(),
            "search_query": urlencode(search.as_dict()),
            "actions": SampleAction.choices,
        },
    )


@require_GET
@login_required
def worker_status(request: HttpRequest) -> HttpResponse:
    """A small fragment: warns when no Celery worker has sent a heartbeat recently. Every page polls it, so it
    is also where the web side looks for stalled jobs (throttled per process; workers look too)."""
    jobs.recover_stalled_jobs_if_due()
    return render(request, "synthstudio/worker_status.html", {"worker_alive": worker_alive()})


@require_POST
@login_required
def job_retry(request: HttpRequest, project_id: int, kind: str, job_id: int) -> HttpResponse:
    """Retry on any failed job (the shared job partial shows it): queue it again through its own task, then go
    back to the page it was shown on."""
    project = lead_project(request, project_id)
    job_kind = jobs.job_kinds().get(kind)
    if job_kind is None:
        raise Http404("No such kind of job.")
    job = get_object_or_404(job_kind.model, pk=job_id, project=project)
    try:
        jobs.job_retry(job=job)
    except jobs.JobNotRetryable as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Queued again.")
    if request.htmx:
        return HttpResponseClientRefresh()
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("project_detail", args=[project.id])
    return redirect(target)


# ---------------------------------------------------------------------------------------------- import


@require_http_methods(["GET", "POST"])
@login_required
@limit_upload_size
def import_upload(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    context = {
        "project": project, "role": Role.LEAD, "limit_bytes": settings.IMPORT_MAX_BYTES, "codebook": project.codebook,
        "max_columns": importing.MAX_COLUMNS, "max_line_bytes": importing.MAX_LINE_BYTES,
        "max_json_depth": importing.MAX_JSON_DEPTH,
    }  # fmt: skip
    status = 200
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if refused := upload_refused(request):
            context["upload_refused"] = refused
            status = 413
        elif form.is_valid():
            try:
                job = services.import_create(
                    project=project,
                    user=request.user,
                    upload=form.cleaned_data["file"],
                    file_format=form.cleaned_data["file_format"],
                )
            except services.ImportRefused as refusal:
                form.add_error("file", str(refusal))
            else:
                return redirect("import_mapping", project_id=project.id, job_id=job.id)
    else:
        form = ImportUploadForm()
    recent = (
        ImportJob.objects.filter(project=project).select_related("created_by").order_by("-created_at")[:10]
    )
    return render(
        request, "synthstudio/import_upload.html", {**context, "form": form, "recent": recent}, status=status
    )


@require_http_methods(["GET", "POST"])
@login_required
def import_mapping(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    if job.mapping:
        return redirect("import_progress", project_id=project.id, job_id=job.id)
    preview = services.import_preview(job=job)
    codebook = project.codebook
    label_names = codebook.label_names if codebook else []
    form = ImportMappingForm(request.POST or None, columns=preview.columns, label_names=label_names)
    if request.method == "POST" and not preview.error and form.is_valid():
        services.import_start(job=job, mapping=form.mapping())
        return redirect("import_progress", project_id=project.id, job_id=job.id)
    return render(
        request,
        "synthstudio/import_mapping.html",
        {
            "project": project,
            "role": Role.LEAD,
            "job": job,
            "preview": preview,
            "preview_rows": [[row.get(column) for column in preview.columns] for row in preview.rows],
            "form": form,
            "label_names": label_names,
            "codebook": codebook,
        },
    )


@require_GET
@login_required
def import_progress(request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    job = get_object_or_404(ImportJob, pk=job_id, project=project)
    template = "synthstudio/import_progress.html"
    if request.htmx:
        template += "#import-job"
    return render(
        request,
        template,
        {
            "project": project,
            "role": Role.LEAD,
            "job": job,
            "worker_alive": worker_alive(),
            "poll_url": reverse("import_progress", args=[project.id, job.id]),
        },
    )
