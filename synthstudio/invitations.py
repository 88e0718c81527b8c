"""Invitations: a lead brings a teammate into a project with a role.

A lead invites an email address (a new person, who sets a username and password on the invite page, or
someone who already has an account and logs in) or an existing username (only that account may accept). The
invite link carries a random token; only its SHA-256 hash is stored, so the link is the only way to use the
invitation. It is mailed when EMAIL_HOST is set and otherwise shown once to the lead to copy. An invitation
expires after INVITATION_EXPIRY_DAYS, can be revoked, and is used once (accepting is one conditional UPDATE,
so two tabs accepting at once make one membership).

Accepting never grants more than the project role: who may create projects still follows PROJECT_CREATORS.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from synthstudio.models import Invitation, Membership, Project, Role


class InvitationInvalid(Exception):
    """The link cannot be used; the message says why, in words the invited person understands."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


UNKNOWN_MESSAGE = (
    "This invitation link is not valid. Check that you copied the whole link, or ask for a new one."
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mail_configured() -> bool:
    """Whether invitations are mailed (EMAIL_HOST is set) or shown to the lead to copy."""
    return bool(settings.EMAIL_HOST)


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown or mailed once; only its hash is stored
    mailed: bool


def invitation_create(
    *,
    project: Project,
    user: AbstractBaseUser,
    role: str,
    email: str = "",
    invitee: AbstractBaseUser | None = None,
    accept_url: Callable[[str], str],
) -> NewInvitation:
    """Invite `email` or the existing account `invitee` to `project` as `role`. `accept_url(token)` builds the
    absolute link. Mails it when EMAIL_HOST is set (a mail failure raises and no invitation is kept)."""
    if bool(email) == (invitee is not None):
        raise ValueError("Invite either an email address or an existing user.")
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    token = secrets.token_urlsafe(32)
    mailed = bool(email) and mail_configured()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            project=project,
            role=role,
            email=email,
            invitee=invitee,
            token_hash=token_hash(token),
            created_by=user,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_EXPIRY_DAYS),
        )
        if mailed:
            # inside the transaction: when the mail server refuses, the invitation is not kept either
            send_mail(
                subject=f"Join {project.name} on synthstudio",
                message=(
                    f"{user.get_username()} invites you to the project “{project.name}” as {role}.\n\n"
                    f"Open this link to join (it works once and expires on "
                    f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{accept_url(token)}\n"
                ),
                from_email=None,
                recipient_list=[email],
            )
    return NewInvitation(invitation=invitation, token=token, mailed=mailed)


def invitation_for_token(token: str) -> Invitation:
    """The invitation a link names, or InvitationInvalid saying why it cannot be used (unknown: 404; expired,
    revoked or used: 410)."""
    invitation = (
        Invitation.objects.select_related("project", "invitee", "created_by")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if invitation is None:
        raise InvitationInvalid(UNKNOWN_MESSAGE, status=404)
    if invitation.accepted_at is not None:
        raise InvitationInvalid(
            "This invitation has already been used. Log in with the account that accepted it, "
            "or ask the project's lead for a new invitation.",
            status=410,
        )
    if invitation.revoked_at is not None:
        raise InvitationInvalid(
            "This invitation was withdrawn by the project's lead. Ask them for a new one if you still need it.",
            status=410,
        )
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Ask the project's lead for a new one.",
            status=410,
        )
    return invitation


def invitation_wrong_account(*, invitation: Invitation, user: AbstractBaseUser) -> str:
    """Why `user` may not accept an invitation meant for another account ("" when they may)."""
    if invitation.invitee_id is not None and invitation.invitee_id != user.pk:
        return (
            f"This invitation is for the account {invitation.invitee.username!r}, but you are logged in as "
            f"{user.get_username()!r}. Log out and log in as {invitation.invitee.username!r} to accept it."
        )
    return ""


def invitation_accept(*, invitation: Invitation, user: AbstractBaseUser) -> Membership:
    """Use the invitation once: `user` joins the project with its role (an existing member keeps the higher
    of the two roles). Raises InvitationInvalid when it was used, revoked or expired meanwhile."""
    if problem := invitation_wrong_account(invitation=invitation, user=user):
        raise InvitationInvalid(problem, status=403)
    now = timezone.now()
    with transaction.atomic():
        claimed = Invitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(accepted_at=now, accepted_by=user)
        if not claimed:
            _raise_why_unusable(invitation)
        membership, created = Membership.objects.get_or_create(
            project=invitation.project, user=user, defaults={"role": invitation.role}
        )
        if not created and invitation.role == Role.LEAD and membership.role != Role.LEAD:
            membership.role = Role.LEAD
            membership.save(update_fields=["role"])
    return membership


def _raise_why_unusable(invitation: Invitation) -> None:
    """Raise the reason the (re-read) invitation cannot be used: another request used it meanwhile."""
    invitation.refresh_from_db()
    if invitation.accepted_at is not None:
        raise InvitationInvalid("This invitation has just been used.", status=410)
    if invitation.revoked_at is not None:
        raise InvitationInvalid("This invitation was withdrawn by the project's lead.", status=410)
    raise InvitationInvalid("This invitation has expired. Ask the project's lead for a new one.", status=410)


def invitation_revoke(*, invitation: Invitation) -> bool:
    """Withdraw a pending invitation; False when it was already accepted or revoked."""
    return bool(
        Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def invitation_signup(*, invitation: Invitation, username: str, password: str) -> AbstractBaseUser:
    """Create the account of a person invited by email and accept the invitation with it, in one step: if the
    invitation cannot be used any more, no account is left behind."""
    with transaction.atomic():
        user = get_user_model().objects.create_user(
            username=username, email=invitation.email, password=password
        )
        invitation_accept(invitation=invitation, user=user)
    return user
