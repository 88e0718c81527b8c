"""Create the demo: three users (one lead, two annotators) and a customer-support intent project with a
hand-written codebook and a few dozen seed samples. Safe to run again: nothing is duplicated."""

from __future__ import annotations

import json
import secrets
from itertools import zip_longest

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from synthstudio import services
from synthstudio.models import (
    FinalSource,
    HumanAnnotation,
    HumanSource,
    Origin,
    Project,
    Role,
    Sample,
    text_hash,
)

DEMO_USERS = [("demo_lead", Role.LEAD), ("demo_ann1", Role.ANNOTATOR), ("demo_ann2", Role.ANNOTATOR)]
PROJECT_NAME = "Customer support intents (demo)"
PROJECT_DESCRIPTION = (
    "Route incoming customer-support messages of an online shop to the right team. "
    "A demo project: seed messages written by the synthstudio team."
)
TASK_DESCRIPTION = (
    "Classify the main intent of a customer-support message sent to an online shop, so that it reaches the "
    "team that can resolve it. Each message gets exactly one label: the customer's main request."
)
GUIDELINES = """\
## How to choose the label

1. Read the whole message and ask: **which team has to act** to resolve it?
2. If the message raises several topics, label the one the customer **asks us to do something about**;
   background details do not count. *"My card was charged twice for an order that never arrived"*: the
   customer wants a refund of the double charge → **billing**.
3. Complaints about the *speed* of support itself follow the topic they are about.

## Borderline cases

| message is about | label |
|---|---|
| a refund for an item that arrived broken | **product_defect** (the replacement/refund follows the defect report) |
| a refund for a cancelled order | **billing** |
| a parcel marked delivered but not received | **delivery** |
| cannot log in to see an invoice | **account_access** |

Do not guess the customer's mood: sentiment is not part of this task.
"""
LABELS = [
    {
        "name": "billing",
        "description": "Charges, refunds, invoices, payment methods, promo codes and prices.",
        "examples": [
            "I was charged twice for order 4471.",
            "Can I get an invoice with my company's VAT number?",
        ],
    },
    {
        "name": "delivery",
        "description": "Where an order is, delivery dates, couriers, addresses, lost or late parcels.",
        "examples": ["My parcel has said 'in transit' for nine days.", "Can I change the delivery address?"],
    },
    {
        "name": "account_access",
        "description": "Logging in, passwords, two-factor codes, locked or hacked accounts, email changes.",
        "examples": [
            "The password reset email never arrives.",
            "My account is locked after too many attempts.",
        ],
    },
    {
        "name": "product_defect",
        "description": "An item arrived broken, faulty, incomplete or not as described; warranty and repairs.",
        "examples": ["The kettle leaks from the bottom.", "The left earbud stopped charging after a week."],
    },
]
SEED_SAMPLES = {
    "billing": [
        "Hi, I see two payments of 59.90 on my card for the same order. Please refund one of them.",
        "I cancelled my order an hour after placing it but the money is still gone from my account.",
        "Your checkout refuses my discount code SPRING15 although it should be valid until Sunday.",
        "Could you send me an invoice with our company name and VAT number for order 88213?",
        "Why was I charged a shipping fee when the site says delivery is free above 50 euros?",
        "I returned the jacket three weeks ago and still have not received my refund.",
        "Is it possible to pay by bank transfer instead of credit card?",
        "The price dropped by 20 euros two days after I bought it. Can I get the difference back?",
        "My subscription renewed even though I turned off auto-renewal last month.",
    ],
    "delivery": [
        "Tracking has shown 'label created' for a week. Has my order actually been sent?",
        "The courier says the parcel was delivered but nothing is at my door or with my neighbours.",
        "I am moving on Friday. Can you change the delivery address for order 30057?",
        "When will the blue version be back in stock and shipped? I ordered it on the 2nd.",
        "The parcel was left in the rain outside the building. Next time please use the pickup point.",
        "Do you deliver to the Canary Islands, and how long does it take?",
        "Only one of my two packages arrived. The second tracking number does not work.",
        "Can I pick up my order at the store instead of waiting for the courier?",
        "The delivery window was 9 to 12 and nobody came. What happens now?",
    ],
    "account_access": [
        "I never receive the password reset email, and I checked my spam folder.",
        "My account got locked after I mistyped my password. How do I unlock it?",
        "I changed phones and no longer get the two-factor codes. How can I log in?",
        "Someone changed the email address on my account. I think it was hacked.",
        "The app logs me out every time I close it.",
        "I want to use my new email address for my account but the old one no longer exists.",
        "It says 'account does not exist' but I have ordered from you many times.",
        "The login page just keeps loading forever in Firefox.",
        "How do I delete my account and all the data you have about me?",
    ],
    "product_defect": [
        "The blender I received has a crack in the jug and leaks when I fill it.",
        "The left earbud stopped charging after ten days of normal use.",
        "The box was missing the power adapter that the product page lists.",
        "The colour of the sofa cover is grey, but I ordered and paid for dark green.",
        "My vacuum makes a burning smell after a few minutes. Is this covered by the warranty?",
        "Two of the six glasses arrived shattered.",
        "The screen of the tablet flickers when brightness is below half.",
        "The zip of the backpack broke the second time I used it.",
        "The shoes are labelled size 42 but one of them is clearly a 41.",
    ],
}


class Command(BaseCommand):
    help = "Create (or complete) the demo project and demo users, and print their logins. Safe to run twice."

    def handle(self, *args, **options) -> None:
        passwords = _demo_passwords()
        with transaction.atomic():
            users = {username: _demo_user(username, passwords[username]) for username, _ in DEMO_USERS}
            project = Project.objects.filter(name=PROJECT_NAME, memberships__user=users["demo_lead"]).first()
            if project is None:
                project = services.project_create(
                    name=PROJECT_NAME, description=PROJECT_DESCRIPTION, user=users["demo_lead"]
                )
            for username, role in DEMO_USERS:
                services.membership_set(project=project, user=users[username], role=role)
            codebook = project.codebook or services.codebook_create_version(
                project=project,
                user=users["demo_lead"],
                task_description=TASK_DESCRIPTION,
                guidelines=GUIDELINES,
                labels=LABELS,
            )
            created = _seed_samples(project, codebook)
        self.stdout.write(
            self.style.SUCCESS(f"Demo project: {project.name} (id {project.id}), {created} new seed samples.")
        )
        # The rest of the workflow lives in the apps that may import the services it needs (generation,
        # labelling and routing in annotation; the snapshot and an offline judge run in evaluation). Called by
        # name, so that synthstudio imports nothing upward.
        call_command("demo_workflow", stdout=self.stdout)
        call_command("demo_snapshot", stdout=self.stdout)
        call_command("demo_judge", stdout=self.stdout)
        call_command("demo_quality_target", stdout=self.stdout)
        self.stdout.write(
            "The demo's runs are offline (marked so) whether or not LLM_BASE_URL is set; runs you start use "
            "the project's endpoint, else LLM_BASE_URL's, else offline."
        )
        self.stdout.write(f"Demo logins (also in {settings.VAR_DIR / 'demo_logins.json'}):")
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {role:<10} {username:<10} password: {passwords[username]}")


def _demo_passwords() -> dict[str, str]:
    """Random passwords made once and kept under var/, so a second run prints logins that still work."""
    path = settings.VAR_DIR / "demo_logins.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    passwords = {username: stored.get(username) or secrets.token_urlsafe(9) for username, _ in DEMO_USERS}
    if passwords != stored:
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
    return passwords


def _demo_user(username: str, password: str):
    user, _ = get_user_model().objects.get_or_create(username=username)
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    # The demo lead plays the team's administrator: staff may create projects under the default
    # PROJECT_CREATORS=staff (staff status alone gives no admin permissions).
    if username == "demo_lead" and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def _seed_samples(project: Project, codebook) -> int:
    existing = set(Sample.objects.filter(project=project).values_list("text_hash", flat=True))
    # Interleave the labels so that the first page (and a review queue in id order) shows every intent.
    columns = [[(label, text) for text in texts] for label, texts in SEED_SAMPLES.items()]
    interleaved = [pair for row in zip_longest(*columns) for pair in row if pair is not None]
    new = [(label, text) for label, text in interleaved if text_hash(text) not in existing]
    samples = Sample.objects.bulk_create(
        Sample(
            project=project,
            text=text,
            text_hash=text_hash(text),
            origin=Origin.IMPORTED,
            provenance={"source": "demo seed, written by the synthstudio team"},
            is_seed=True,
            final_label=label,
            final_source=FinalSource.HUMAN,
            final_weight=1.0,
        )
        for label, text in new
    )
    # The seed texts were written for their label: record it as an imported human label.
    HumanAnnotation.objects.bulk_create(
        HumanAnnotation(sample=sample, codebook=codebook, source=HumanSource.IMPORTED, label=label)
        for sample, (label, _) in zip(samples, new, strict=True)
    )
    return len(samples)
