"""The one access check: every view starts from request.user and the project role.

A user who is not a member gets 404 (the project's existence is not revealed); a member without the needed
role gets 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from . import fastsql
from .models import Membership, Project, Role


def project_for_user(request: HttpRequest, project_id: int, *, lead: bool = False) -> tuple[Project, str]:
    """Return (project, role) for the current user, or raise 404 (not a member) / 403 (not a lead)."""
    user = request.user
    if not user.is_authenticated:
        raise Http404("No such project.")
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise Http404("No such project.") from None
    # every page of a project starts here, the review queue's answers included: plain SQL (see fastsql)
    row = fastsql.fetchone(
        f"SELECT {fastsql.columns(Membership, 'm')}, {fastsql.columns(Project, 'p')} FROM synthstudio_membership m"
        " JOIN synthstudio_project p ON p.id = m.project_id WHERE m.project_id = %s AND m.user_id = %s",
        [project_id, user.pk],
    )
    if row is None:
        raise Http404("No such project.")
    membership, project = fastsql.instances(row, Membership, Project)
    membership.project = project
    if lead and membership.role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    return membership.project, membership.role


def lead_project(request: HttpRequest, project_id: int) -> Project:
    return project_for_user(request, project_id, lead=True)[0]


def member_project(request: HttpRequest, project_id: int) -> Project:
    return project_for_user(request, project_id)[0]
