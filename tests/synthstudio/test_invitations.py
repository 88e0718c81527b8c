"""Invitations (issue 14 item 5): a lead invites by email or username; the link lets a new person create an
account, or an existing user log in, and join with the role; links expire, can be revoked, work once, and only
their hash is stored."""

from __future__ import annotations

import html
import re
import smtplib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from synthstudio import invitations
from synthstudio.models import Invitation, Membership, Role
from tests.conftest import PASSWORD, make_user

NEW_PASSWORD = "a-long-new-password-42"


def role_of(project, user) -> str | None:
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def invite(lead_client, project, invitee: str, role: str = Role.ANNOTATOR):
    return lead_client.post(
        reverse("members", args=[project.id]), {"invite": "1", "invitee": invitee, "role": role}
    )


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def logs_in(client: Client, username: str, password: str) -> bool:
    """Through the login form (django-axes refuses Client.login without a request)."""
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def link_of(response) -> str:
    """The accept path of the invitation the members page just showed (the token is shown only there)."""
    match = re.search(r'id="invitation-link" size="80" value="([^"]+)"', response.content.decode())
    assert match, "the members page shows no invitation link"
    return match.group(1).removeprefix("http://testserver")


def test_without_a_mail_server_the_lead_gets_a_link_to_copy_and_no_mail_is_sent(
    lead_client, project, settings
):
    settings.EMAIL_HOST = ""

    response = invite(lead_client, project, "new.person@example.org")

    assert response.status_code == 200
    path = link_of(response)
    assert path.startswith("/invite/")
    assert "No mail server is configured" in response.content.decode()
    assert mail.outbox == []
    invitation = Invitation.objects.get(project=project)
    assert (invitation.email, invitation.role, invitation.accepted_at) == (
        "new.person@example.org",
        "annotator",
        None,
    )


def test_only_the_hash_of_the_token_is_stored(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    token = link_of(invite(lead_client, project, "new.person@example.org")).split("/")[2]

    invitation = Invitation.objects.get(project=project)

    assert token not in {invitation.token_hash, invitation.email}
    assert invitation.token_hash == invitations.token_hash(token)
    assert Invitation.objects.filter(token_hash=token).count() == 0


def test_with_a_mail_server_the_link_is_mailed_and_not_shown(lead_client, project, settings):
    settings.EMAIL_HOST = "smtp.example.org"  # pytest-django swaps the SMTP backend for locmem

    response = invite(lead_client, project, "new.person@example.org", Role.LEAD)

    assert "Invitation mailed to" in response.content.decode()
    assert 'id="invitation-link"' not in response.content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@example.org"]
    assert project.name in message.subject
    path = re.search(r"http://testserver(/invite/\S+/)", message.body).group(1)
    assert Client().get(path).status_code == 200


def test_a_new_person_sets_a_username_and_password_and_joins_with_the_role(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    path = link_of(invite(lead_client, project, "new.person@example.org"))
    visitor = Client()

    page = visitor.get(path)
    assert page.status_code == 200
    assert "Create your account" in page.content.decode()
    response = visitor.post(
        path, {"username": "nina_new", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("project_detail", args=[project.id])
    user = get_user_model().objects.get(username="nina_new")
    assert user.email == "new.person@example.org"
    assert role_of(project, user) == Role.ANNOTATOR
    assert visitor.get(reverse("project_detail", args=[project.id])).status_code == 200  # logged in
    assert logs_in(Client(), "nina_new", NEW_PASSWORD)


def test_a_weak_password_is_refused_and_nothing_is_created(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    path = link_of(invite(lead_client, project, "new.person@example.org"))

    response = Client().post(path, {"username": "nina_new", "password1": "12345678", "password2": "12345678"})

    assert response.status_code == 200
    assert response.context["signup_form"].errors["password2"]
    assert not get_user_model().objects.filter(username="nina_new").exists()
    assert Invitation.objects.get(project=project).accepted_at is None


def test_an_existing_user_logs_in_and_accepts(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    path = link_of(invite(lead_client, project, "someone@example.org", Role.LEAD))
    existing = make_user("erik_existing")
    visitor = Client()

    page = visitor.get(path).content.decode()
    assert f"{reverse('login')}?next=%2Finvite%2F" in page
    assert logs_in(visitor, "erik_existing", PASSWORD)
    assert "Join the project" in visitor.get(path).content.decode()
    response = visitor.post(path, {"accept": ""})

    assert response.status_code == 302
    assert role_of(project, existing) == Role.LEAD


def test_an_invitation_by_username_is_for_that_account_only(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    invited, other = make_user("ida_invited"), make_user("oscar_other")
    path = link_of(invite(lead_client, project, "ida_invited"))
    as_other = Client()
    as_other.force_login(other)

    refused = as_other.post(path, {"accept": ""})

    assert refused.status_code == 403
    assert "for the account 'ida_invited'" in text_of(refused)
    assert role_of(project, other) is None
    anonymous = Client().get(path).content.decode()
    assert "Create your account" not in anonymous and "Log in as ida_invited" in anonymous
    as_invited = Client()
    as_invited.force_login(invited)
    assert as_invited.post(path, {"accept": ""}).status_code == 302
    assert role_of(project, invited) == Role.ANNOTATOR


def test_inviting_an_unknown_username_or_a_member_says_what_to_do(lead_client, project, annotator):
    unknown = invite(lead_client, project, "nobody_here")
    member = invite(lead_client, project, annotator.username)

    assert "Enter their email address" in unknown.context["invite_form"].errors["invitee"][0]
    assert "already a member" in member.context["invite_form"].errors["invitee"][0]
    assert not Invitation.objects.exists()


def test_an_invitation_works_once(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    path = link_of(invite(lead_client, project, "new.person@example.org"))
    Client().post(path, {"username": "nina_new", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    again = Client().post(path, {"username": "mallory", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_an_expired_invitation_says_so(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    settings.INVITATION_EXPIRY_DAYS = 7
    path = link_of(invite(lead_client, project, "new.person@example.org"))
    invitation = Invitation.objects.get(project=project)
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=7)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = Client().post(
        path, {"username": "nina_new", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert response.status_code == 410
    assert "This invitation expired on" in response.content.decode()
    assert not get_user_model().objects.filter(username="nina_new").exists()


def test_the_expiry_follows_the_setting(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    settings.INVITATION_EXPIRY_DAYS = 2
    invite(lead_client, project, "new.person@example.org")

    left = Invitation.objects.get(project=project).expires_at - timezone.now()

    assert timedelta(days=1, hours=23) < left <= timedelta(days=2)


def test_a_revoked_invitation_says_so_and_leaves_the_pending_list(lead_client, project, settings):
    settings.EMAIL_HOST = ""
    path = link_of(invite(lead_client, project, "new.person@example.org"))
    invitation = Invitation.objects.get(project=project)
    members = reverse("members", args=[project.id])
    assert "new.person@example.org" in lead_client.get(members).content.decode()

    lead_client.post(reverse("invitation_revoke", args=[project.id, invitation.id]))

    response = Client().get(path)
    assert response.status_code == 410
    assert "withdrawn by the project's lead" in text_of(response)
    assert 'id="pending-invitations"' not in lead_client.get(members).content.decode()


def test_an_unknown_token_says_the_link_is_not_valid(db):
    response = Client().get(reverse("invitation_accept", args=["made-up"]))

    assert response.status_code == 404
    assert "This invitation link is not valid" in response.content.decode()


def test_annotators_cannot_invite_or_revoke(annotator_client, project, lead):
    invitation = Invitation.objects.create(
        project=project,
        email="x@example.org",
        token_hash="0" * 64,
        created_by=lead,
        expires_at=timezone.now(),
    )

    assert invite(annotator_client, project, "x@example.org").status_code == 403
    assert (
        annotator_client.post(reverse("invitation_revoke", args=[project.id, invitation.id])).status_code
        == 403
    )
    assert Invitation.objects.count() == 1 and Invitation.objects.get().revoked_at is None


@pytest.mark.parametrize("creators,allowed", [("staff", False), ("everyone", True)])
def test_an_invited_lead_creates_projects_only_as_project_creators_allows(
    lead_client, project, settings, creators, allowed
):
    settings.EMAIL_HOST = ""
    settings.PROJECT_CREATORS = creators
    path = link_of(invite(lead_client, project, "new.lead@example.org", Role.LEAD))
    visitor = Client()
    visitor.post(path, {"username": "nina_new", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert role_of(project, get_user_model().objects.get(username="nina_new")) == Role.LEAD
    assert visitor.get(reverse("project_new")).status_code == (200 if allowed else 403)


class RefusingMailServer(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_when_the_mail_server_refuses_the_lead_is_told_and_no_invitation_is_kept(
    lead_client, project, settings
):
    settings.EMAIL_HOST = "smtp.example.org"
    settings.EMAIL_BACKEND = f"{__name__}.RefusingMailServer"

    response = invite(lead_client, project, "new.person@example.org")

    assert response.status_code == 200
    assert "could not be mailed" in response.context["invite_form"].non_field_errors()[0]
    assert not Invitation.objects.exists()
