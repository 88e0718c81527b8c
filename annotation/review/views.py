"""Pages of the review queue: the annotator's workbench (next, answer, skip, undo, history, edit) and the
lead's views (queue overview, release/reassign, adjudication, gold items, text corrections).

Every page starts from request.user: non-members get 404, members who are not leads get 403 on lead pages,
and an annotator's assignment is looked up among their own only (someone else's id is a 404).
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.models import (
    Assignment,
    AssignmentStatus,
    CorrectionStatus,
    GoldItem,
    ReviewTask,
    SampleTextVersion,
)
from annotation.review import answers, history, lead, progress, queue, reliability
from annotation.review.forms import (
    AdjudicationForm,
    GoldItemForm,
    GoldRateForm,
    LabelAggregationForm,
    ReassignForm,
    ReviewAnswerForm,
    ReviewHistoryForm,
    ReviewSkipForm,
)
from synthstudio.access import lead_project, project_for_user
from synthstudio.models import (
    Codebook,
    FlagReason,
    LabelMethod,
    Membership,
    Project,
    QualityRating,
    Role,
    Sample,
)

WORKBENCH = "annotation/review/workbench.html"


def _own_assignment(request: HttpRequest, project: Project, assignment_id: int) -> Assignment:
    assignment = queue.review_item(project=project, assignment_id=assignment_id, annotator=request.user)
    if assignment is None:
        raise Http404("No such item in your queue.")
    return assignment


def _codebook(project: Project) -> Codebook | None:
    """The current codebook with its labels fetched once (the label buttons and the codebook panel share them)."""
    return project.codebooks.order_by("-version").prefetch_related("labels").first()


def _current_codebook(project: Project) -> Codebook | None:
    """The current codebook version without its labels (the workbench takes them from answers.codebook_labels)."""
    return project.codebooks.order_by("-version").first()


def _item_context(project: Project, assignment: Assignment | None) -> dict:
    """What the workbench shows about the reserved item: text, fields, conditions, the LLM's suggestion."""
    if assignment is None:
        return {"assignment": None}
    sample = assignment.task.sample
    suggestion = assignment.llm_suggestion if project.show_llm_suggestion else None
    provenance = sample.provenance if isinstance(sample.provenance, dict) else {}
    conditions = provenance.get("conditions")
    return {
        "assignment": assignment,
        "sample": sample,
        "fields": sample.fields if isinstance(sample.fields, dict) else {},
        "conditions": conditions if isinstance(conditions, dict) else {},
        "suggestion": suggestion,
        "suggestion_is_offline": bool(suggestion and suggestion.method == LabelMethod.OFFLINE),
        "submission_id": uuid.uuid4().hex,
    }


def _render_workbench(
    request: HttpRequest,
    project: Project,
    role: str,
    assignment: Assignment | None,
    *,
    error: str = "",
    saved_label: str = "",
    status: int = 200,
    pairs_badge: bool = False,
    codebook: Codebook | None = None,
) -> HttpResponse:
    """`codebook`: the project's current version when this request has read it already (saves a query).
    `pairs_badge`: load the "N pairs waiting" note from evaluation (full pages only)."""
    own_progress = progress.review_progress(project=project, annotator=request.user)
    if assignment is not None:
        codebook = assignment.current_codebook
    elif codebook is None:
        codebook = _current_codebook(project)
    context = {
        "project": project,
        "role": role,
        "codebook": codebook,
        "labels": answers.codebook_labels(codebook) if codebook else (),
        "progress": own_progress,
        "items_left": own_progress.remaining + (1 if assignment is not None else 0),
        "flag_choices": [choice for choice in FlagReason.choices if choice[0]],
        "rating_choices": QualityRating.choices,
        "error": error,
        "saved_label": saved_label,
        "pairs_badge": pairs_badge,
        **_item_context(project, assignment),
    }
    template = WORKBENCH + "#workbench" if request.htmx else WORKBENCH
    return render(request, template, context, status=status)


@require_GET
@login_required
def review_queue(request: HttpRequest, project_id: int) -> HttpResponse:
    """The workbench: the annotator's current reservation or their next item. A full page also loads how many
    pairs wait for them from evaluation:pairwise_waiting_badge (hx-get: evaluation sits above annotation);
    once the label queue is empty the workbench loads the next pair from evaluation:pairwise_review (a request
    of its own, so answering labels never queries pairs).

    A lead reserves nothing by opening it: unless they hold an item already, they get the lead start page and
    review themselves only through its explicit "Review items myself" (`?myself=1`); the workbench then shows
    them the item they hold with a button that releases it."""
    project, role = project_for_user(request, project_id)
    if role == Role.LEAD and not request.GET.get("myself") and not _holds_an_item(request, project):
        return _render_lead_start(request, project)
    assignment = queue.review_next(project=project, annotator=request.user)
    return _render_workbench(request, project, role, assignment, pairs_badge=not request.htmx)


def _holds_an_item(request: HttpRequest, project: Project) -> bool:
    return Assignment.objects.live_for(request.user, project).exists()


def _render_lead_start(request: HttpRequest, project: Project) -> HttpResponse:
    """What a lead sees behind the nav's Review: the queue, and reviewing items themselves as an explicit
    choice (`?myself=1`), since every item a lead opens is reserved for them and taken from the annotators'
    queue for project.reservation_minutes."""
    context = {
        "project": project,
        "role": Role.LEAD,
        "waiting": ReviewTask.objects.filter(project=project, is_open=True).count(),
    }
    return render(request, "annotation/review/lead_start.html", context)


@require_POST
@login_required
def review_answer(request: HttpRequest, project_id: int, assignment_id: int) -> HttpResponse:
    """Store the answer, then show the next item in the same response (htmx) or redirect to it."""
    project, role = project_for_user(request, project_id)
    assignment = _own_assignment(request, project, assignment_id)
    form = ReviewAnswerForm(request.POST)
    if not form.is_valid():
        error = (
            "Pick a label."
            if "label" in form.errors
            else "The answer could not be read: "
            + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        )
        return _render_workbench(
            request, project, role, assignment, error=error, status=200 if request.htmx else 400
        )
    try:
        answers.review_answer_submit(
            assignment=assignment, codebook=assignment.current_codebook, **form.cleaned_data
        )
    except queue.ReviewError as refusal:
        current = queue.review_next(project=project, annotator=request.user)
        return _render_workbench(request, project, role, current, error=str(refusal))
    if not request.htmx:
        return redirect("annotation:review_queue", project_id=project.id)
    codebook = assignment.current_codebook
    following = queue.review_next(project=project, annotator=request.user, codebook=codebook)
    return _render_workbench(
        request, project, role, following, saved_label=form.cleaned_data["label"], codebook=codebook
    )


@require_POST
@login_required
def review_skip(request: HttpRequest, project_id: int, assignment_id: int) -> HttpResponse:
    project, role = project_for_user(request, project_id)
    assignment = _own_assignment(request, project, assignment_id)
    form = ReviewSkipForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            answers.review_skip(assignment=assignment, reason=form.cleaned_data["reason"])
        except queue.ReviewError as refusal:
            error = str(refusal)
    else:
        error = "Say why you skip it."
    if not request.htmx and not error:
        return redirect("annotation:review_queue", project_id=project.id)
    return _render_workbench(
        request, project, role, queue.review_next(project=project, annotator=request.user), error=error
    )


@require_POST
@login_required
def review_undo(request: HttpRequest, project_id: int) -> HttpResponse:
    """Take back one's last answer; that item is shown again."""
    project, role = project_for_user(request, project_id)
    undone = answers.review_answer_undo(project=project, annotator=request.user)
    error = "" if undone else "There is no answer to undo."
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("annotation:review_queue", project_id=project.id)
    return _render_workbench(
        request, project, role, queue.review_next(project=project, annotator=request.user), error=error
    )


HISTORY_PER_PAGE = 50


@require_GET
@login_required
def review_history(request: HttpRequest, project_id: int) -> HttpResponse:
    """The user's own answers (and, on request, skips) in the project, filtered and paginated; answers are
    editable. Everyone sees only their own rows, leads included."""
    project, role = project_for_user(request, project_id)
    codebook = project.codebook
    form = ReviewHistoryForm(request.GET, label_names=codebook.label_names if codebook else [])
    rows = history.review_history(
        project=project, annotator=request.user, history_filter=form.history_filter()
    )
    page = Paginator(rows, HISTORY_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    template = "annotation/review/history.html"
    if request.htmx:
        template += "#history-table"
    return render(
        request,
        template,
        {"project": project, "role": role, "page": page, "form": form, "filter_query": query.urlencode()},
    )


@require_http_methods(["GET", "POST"])
@login_required
def review_answer_edit(request: HttpRequest, project_id: int, assignment_id: int) -> HttpResponse:
    project, role = project_for_user(request, project_id)
    assignment = _own_assignment(request, project, assignment_id)
    if assignment.status != AssignmentStatus.ANSWERED or assignment.answer is None:
        messages.error(request, "Only an answered item can be edited.")
        return redirect("annotation:review_history", project_id=project.id)
    answer = assignment.answer
    error = ""
    if request.method == "POST":
        form = ReviewAnswerForm(request.POST)
        if form.is_valid():
            fields = {
                key: form.cleaned_data[key]
                for key in ("label", "rating", "flag", "flag_note", "comment", "edited_text")
            }
            try:
                answers.review_answer_edit(assignment=assignment, **fields)
            except queue.ReviewError as refusal:
                error = str(refusal)
            else:
                messages.success(request, "Answer updated.")
                return redirect("annotation:review_history", project_id=project.id)
        else:
            error = "Pick a label."
    sample = assignment.task.sample
    return render(
        request,
        "annotation/review/edit.html",
        {
            "project": project,
            "role": role,
            "assignment": assignment,
            "answer": answer,
            "sample": sample,
            "current_text": answer.edited_text or sample.text,
            "codebook": _codebook(project),
            "flag_choices": [choice for choice in FlagReason.choices if choice[0]],
            "rating_choices": QualityRating.choices,
            "error": error,
        },
    )


# ------------------------------------------------------------------------------------------------ lead


@require_GET
@login_required
def review_overview(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    queue.review_reservations_expire(project=project)
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    overview = lead.review_queue_overview(project=project)
    context = {
        "project": project,
        "role": Role.LEAD,
        "overview": overview,
        "reservations": lead.review_reservations(project=project),
        "members": members,
        "aggregation_form": LabelAggregationForm(initial={"method": overview.label_aggregation}),
    }
    return render(request, "annotation/review/overview.html", context)


@require_POST
@login_required
def label_aggregation_set(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = LabelAggregationForm(request.POST)
    if form.is_valid():
        settings = reliability.label_aggregation_set(project=project, method=form.cleaned_data["method"])
        messages.success(
            request,
            f"Final labels now combine answers by {settings.get_label_aggregation_display().split(' (')[0]}; "
            "annotator accuracy re-estimated.",
        )
    else:
        messages.error(request, "Choose majority vote or Dawid–Skene.")
    return redirect("annotation:review_overview", project_id=project.id)


@require_POST
@login_required
def review_release(request: HttpRequest, project_id: int, assignment_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    assignment = get_object_or_404(Assignment, pk=assignment_id, task__project=project)
    if lead.review_assignment_release(assignment=assignment):
        messages.success(request, "Released: the item is back in the queue.")
    else:
        messages.error(request, "That reservation had already ended.")
    # a lead stopping their own reviewing (the workbench's banner) goes back to the lead start page
    if assignment.annotator_id == request.user.pk:
        return redirect("annotation:review_queue", project_id=project.id)
    return redirect("annotation:review_overview", project_id=project.id)


@require_POST
@login_required
def review_reassign(request: HttpRequest, project_id: int, assignment_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    assignment = get_object_or_404(Assignment, pk=assignment_id, task__project=project)
    form = ReassignForm(request.POST)
    membership = None
    if form.is_valid():
        membership = (
            Membership.objects.filter(project=project, user_id=form.cleaned_data["user_id"])
            .select_related("user")
            .first()
        )
    if membership is None:
        messages.error(request, "Pick a member of this project.")
        return redirect("annotation:review_overview", project_id=project.id)
    try:
        lead.review_assignment_reassign(assignment=assignment, annotator=membership.user)
    except queue.ReviewError as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"Reassigned to {membership.user.username}.")
    return redirect("annotation:review_overview", project_id=project.id)


@require_GET
@login_required
def adjudication_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    items = lead.adjudication_queue(project=project)
    return render(
        request,
        "annotation/review/adjudication_list.html",
        {"project": project, "role": Role.LEAD, "items": items},
    )


@require_http_methods(["GET", "POST"])
@login_required
def adjudication_detail(request: HttpRequest, project_id: int, sample_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    sample = get_object_or_404(Sample, pk=sample_id, project=project)
    form = AdjudicationForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            answers.adjudication_record(
                sample=sample,
                label=form.cleaned_data["label"],
                note=form.cleaned_data["note"],
                user=request.user,
            )
        except queue.ReviewError as refusal:
            error = str(refusal)
        else:
            messages.success(request, f"Adjudicated: {form.cleaned_data['label']}.")
            return redirect("annotation:adjudication_list", project_id=project.id)
    return render(
        request,
        "annotation/review/adjudication_detail.html",
        {
            "project": project,
            "role": Role.LEAD,
            "sample": sample,
            "answers": lead.sample_answers(sample=sample),
            "suggestion": sample.current_llm_annotation(),
            "codebook": _codebook(project),
            "form": form,
            "error": error,
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def gold_items(request: HttpRequest, project_id: int) -> HttpResponse:
    """Gold items with their known labels; a form to mark one and the mix-in rate."""
    project = lead_project(request, project_id)
    form = GoldItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        sample = Sample.objects.filter(pk=form.cleaned_data["sample_id"], project=project).first()
        if sample is None:
            form.add_error("sample_id", "No such sample in this project.")
        else:
            try:
                lead.gold_item_mark(
                    project=project,
                    sample=sample,
                    label=form.cleaned_data["label"],
                    user=request.user,
                    note=form.cleaned_data["note"],
                )
            except queue.ReviewError as refusal:
                form.add_error("label", str(refusal))
            else:
                messages.success(request, f"Sample {sample.pk} is a gold item.")
                return redirect("annotation:gold_items", project_id=project.id)
    items = GoldItem.objects.filter(project=project).select_related("sample", "created_by")
    rate_form = GoldRateForm(initial={"gold_rate": queue.review_gold_rate(project)})
    return render(
        request,
        "annotation/review/gold.html",
        {
            "project": project,
            "role": Role.LEAD,
            "form": form,
            "rate_form": rate_form,
            "items": items,
            "codebook": _codebook(project),
        },
    )


@require_POST
@login_required
def gold_rate_set(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    form = GoldRateForm(request.POST)
    if form.is_valid():
        queue.review_gold_rate_set(project=project, gold_rate=form.cleaned_data["gold_rate"])
        messages.success(request, "Gold rate saved.")
    else:
        messages.error(request, "The gold rate is a share between 0 and 1.")
    return redirect("annotation:gold_items", project_id=project.id)


@require_POST
@login_required
def gold_item_remove(request: HttpRequest, project_id: int, gold_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    gold = get_object_or_404(GoldItem, pk=gold_id, project=project)
    lead.gold_item_remove(gold_item=gold)
    messages.success(request, "Removed from gold.")
    return redirect("annotation:gold_items", project_id=project.id)


# -------------------------------------------------------------------------------------- text corrections

CORRECTIONS_PER_PAGE = 50
CORRECTION_TABS = (CorrectionStatus.PENDING, CorrectionStatus.ACCEPTED, CorrectionStatus.REJECTED)


@require_GET
@login_required
def text_corrections(request: HttpRequest, project_id: int) -> HttpResponse:
    """Annotators' text corrections in one status (pending by default), with their diffs, to accept or reject."""
    project = lead_project(request, project_id)
    status = request.GET.get("status", CorrectionStatus.PENDING)
    if status not in CORRECTION_TABS:
        status = CorrectionStatus.PENDING
    page = Paginator(lead.text_corrections(project=project, status=status), CORRECTIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    counts = lead.text_correction_counts(project=project)
    return render(
        request,
        "annotation/review/text_corrections.html",
        {
            "project": project,
            "role": Role.LEAD,
            "status": status,
            "tabs": [(tab, CorrectionStatus(tab).label, counts[tab]) for tab in CORRECTION_TABS],
            "pending_count": counts[CorrectionStatus.PENDING],
            "page": page,
            "rows": lead.text_correction_rows(list(page)),
        },
    )


def _corrections_page(project: Project, status: str) -> HttpResponse:
    target = reverse("annotation:text_corrections", kwargs={"project_id": project.id})
    return redirect(f"{target}?status={status}" if status in CORRECTION_TABS else target)


@require_POST
@login_required
def text_correction_decide(request: HttpRequest, project_id: int, correction_id: int) -> HttpResponse:
    """Accept (the sample's text from the next snapshot on; the sample's other corrections are rejected) or
    reject one correction."""
    project = lead_project(request, project_id)
    correction = get_object_or_404(SampleTextVersion, pk=correction_id, sample__project=project)
    decision = request.POST.get("decision", "")
    if decision not in {"accept", "reject"}:
        messages.error(request, "Choose accept or reject.")
    else:
        try:
            lead.text_correction_decide(correction=correction, accept=decision == "accept", user=request.user)
        except queue.ReviewError as refusal:
            messages.error(request, str(refusal))
        else:
            done = "Accepted: the next snapshot uses" if decision == "accept" else "Rejected:"
            messages.success(request, f"{done} the correction of sample {correction.sample_id}.")
    return _corrections_page(project, request.POST.get("status", ""))


@require_POST
@login_required
def text_corrections_accept_all(request: HttpRequest, project_id: int) -> HttpResponse:
    project = lead_project(request, project_id)
    accepted, left = lead.text_corrections_accept_all(project=project, user=request.user)
    message = f"Accepted {accepted} correction{pluralize(accepted)}."
    if left:
        message += (
            f" {left} still wait{pluralize(left, 's,')} for you: annotators corrected the same sample "
            "differently (or it already has an accepted text), so pick one."
        )
    messages.success(request, message)
    return _corrections_page(project, CorrectionStatus.PENDING)
