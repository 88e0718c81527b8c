"""The members page: a project always keeps at least one lead (services.membership_set / membership_remove)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from synthstudio import services
from synthstudio.models import Membership, Role
from tests.conftest import make_user


def role_of(project, user) -> str | None:
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def test_the_last_lead_cannot_demote_themselves(lead_client, project, lead):
    response = lead_client.post(
        reverse("members", args=[project.id]), {"username": lead.username, "role": Role.ANNOTATOR}
    )

    assert response.status_code == 200
    assert "at least one lead" in response.context["form"].errors["role"][0]
    assert role_of(project, lead) == Role.LEAD


def test_the_last_lead_cannot_be_removed(lead_client, project, lead):
    membership = Membership.objects.get(project=project, user=lead)

    response = lead_client.post(reverse("member_remove", args=[project.id, membership.id]), follow=True)

    assert "A project keeps at least one lead" in response.content.decode()
    assert role_of(project, lead) == Role.LEAD


def test_a_lead_can_step_down_once_someone_else_leads(lead_client, project, lead, annotator):
    members = reverse("members", args=[project.id])
    assert lead_client.post(members, {"username": annotator.username, "role": Role.LEAD}).status_code == 302

    assert lead_client.post(members, {"username": lead.username, "role": Role.ANNOTATOR}).status_code == 302
    assert (role_of(project, lead), role_of(project, annotator)) == (Role.ANNOTATOR, Role.LEAD)


def test_one_of_two_leads_can_be_removed_but_not_the_second(project, lead):
    second = make_user("sam_second_lead")
    services.membership_set(project=project, user=second, role=Role.LEAD)

    services.membership_remove(project=project, membership=Membership.objects.get(project=project, user=lead))
    with pytest.raises(ValidationError, match="at least one lead"):
        services.membership_remove(
            project=project, membership=Membership.objects.get(project=project, user=second)
        )
    with pytest.raises(ValidationError, match="at least one lead"):
        services.membership_set(project=project, user=second, role=Role.ANNOTATOR)

    assert list(project.memberships.filter(role=Role.LEAD).values_list("user__username", flat=True)) == [
        second.username
    ]


def test_annotators_can_still_be_removed_and_change_roles(project, annotator):
    services.membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    services.membership_remove(
        project=project, membership=Membership.objects.get(project=project, user=annotator)
    )

    assert role_of(project, annotator) is None
