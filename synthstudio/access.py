"""The one access check: every view starts from request.user and the project role.

A user who is not a member gets 404 (the project's existence is not revealed); a member without the needed
role gets 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from synthstudio.models import Membership, Project, Role


def project_for_user(request: HttpRequest, project_id: int, *, lead: bool = False) -> tuple[Project, str]:
    """Return (project, role) for the current user, or raise 404 (not a member) / 403 (not a lead)."""
    user = request.user
    if not user.is_authenticated:
        raise Http404("No such project.")
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise Http404("No such project.") from None
    try:
        membership = Membership.objects.select_related("project").get(project_id=project_id, user=user)
    except Membership.DoesNotExist:
        raise Http404("No such project.") from None
    if lead and membership.role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    return membership.project, membership.role


def lead_project(request: HttpRequest, project_id: int) -> Project:
    return project_for_user(request, project_id, lead=True)[0]


def member_project(request: HttpRequest, project_id: int) -> Project:
    return project_for_user(request, project_id)[0]


def may_create_projects(user) -> bool:
    """PROJECT_CREATORS: "staff" (default) lets only staff and superusers create projects; "everyone" any
    logged-in user. Why it matters: a project's creator becomes its lead, and leads configure LLM endpoints,
    that is, where the server sends requests."""
    from django.conf import settings

    if not user.is_authenticated or not user.is_active:
        return False
    return settings.PROJECT_CREATORS == "everyone" or user.is_staff or user.is_superuser
