"""Cross-model workflows of the core: projects, members, codebook versions."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from .models import Codebook, Label, Membership, Project, Role


def project_create(*, name: str, description: str = "", user: AbstractBaseUser) -> Project:
    """Create a project with its creator as lead."""
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description, created_by=user)
        Membership.objects.create(project=project, user=user, role=Role.LEAD)
    return project


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def codebook_create_version(
    *, project: Project, user, task_description: str, guidelines: str, labels: list[dict]
) -> Codebook:
    """Write a new codebook version with its labels. labels: [{name, description, examples, hotkey}]."""
    with transaction.atomic():
        latest = Codebook.objects.select_for_update().filter(project=project).aggregate(v=Max("version"))["v"] or 0
        codebook = Codebook.objects.create(
            project=project,
            version=latest + 1,
            task_description=task_description,
            guidelines=guidelines,
            created_by=user,
        )
        Label.objects.bulk_create(
            Label(
                codebook=codebook,
                name=item["name"],
                description=item.get("description", ""),
                examples=list(item.get("examples", [])),
                hotkey=item.get("hotkey", "") or (str(index + 1) if index < 9 else ""),
                order=index,
            )
            for index, item in enumerate(labels)
        )
    return codebook

