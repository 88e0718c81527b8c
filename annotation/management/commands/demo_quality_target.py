"""A second demo project whose routing policy has a quality target and a written certificate (issue 13).

The demo's customer-support messages (the seed set and the unlabelled pool, except five that fit no intent) are
labelled by the offline labeller (marked offline everywhere, the certificate included). The policy routes a
calibration sample, the items above the certified threshold, and writes the certificate; the demo's two
annotators answer with the label each message was written for (their answers are simulated: the demo has no
people). Services run in-process, no worker needed; a project that already has a certificate is left alone.

Run it after `manage.py demo` (it needs the demo users): `manage.py demo_quality_target`. It is a project of its
own so that the main demo project keeps its first routed batch waiting for the annotators."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.labelling.services import labelling_run_execute, labelling_run_start
from annotation.management.commands.demo_workflow import UNLABELLED_POOL, demo_texts_import
from annotation.models import LabelCertificate, RoutingStrategy, SignalsRun
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set, review_next
from annotation.routing.certificates import certificate_as_dict, certificate_is_stale
from annotation.routing.services import routing_policy_for, routing_route_next_batch
from annotation.routing.signals import signals_refresh
from synthstudio import services
from synthstudio.management.commands.demo import (
    DEMO_USERS,
    GUIDELINES,
    LABELS,
    SEED_SAMPLES,
    TASK_DESCRIPTION,
)
from synthstudio.models import JobStatus, Project, Role

PROJECT_NAME = "Customer support intents, certified labels (demo)"
PROJECT_DESCRIPTION = (
    "The demo's support messages labelled by the offline labeller, with a quality target: at most "
    "{epsilon:.0%} wrong final labels with probability {confidence:.0%}. A demo project: the annotators' "
    "answers are simulated with the label each message was written for."
)
TARGET_ERROR = 0.15  # lenient: 97 messages and a weak offline labeller (77 % right) certify little less
TARGET_CONFIDENCE = 0.9
CALIBRATION_SIZE = 60
STEPS = 6  # calibration, threshold batch, certificate — with room to spare

# The label each pool message was written for (the seeds carry theirs in SEED_SAMPLES). Five pool messages fit
# no intent of the codebook (a complaint about support alone, a newsletter, spare parts, a call-back request,
# a self-inflicted swap) and stay out of this project.
POOL_LABELS = [
    "delivery", "billing", "account_access", "product_defect", "delivery", "billing", "account_access",
    "product_defect", "delivery", "billing", "account_access", "product_defect", "delivery", "billing",
    "account_access", "product_defect", "billing", "delivery", "account_access", "product_defect", "delivery",
    "billing", "account_access", "product_defect", "delivery", "billing", "account_access", "delivery",
    "product_defect", "billing", None, "product_defect", "billing", "account_access", "product_defect",
    "billing", "delivery", None, "product_defect", "delivery", None, "account_access", "product_defect",
    "billing", "delivery", "product_defect", "billing", "account_access", "billing", "product_defect",
    "billing", "delivery", "billing", "account_access", "product_defect", "billing", None, "product_defect",
    "billing", "delivery", "account_access", None, "product_defect", "account_access", "product_defect",
    "delivery",
]  # fmt: skip


def reference_labels() -> dict[str, str]:
    """{text: the label it was written for} of every message of this project."""
    if len(POOL_LABELS) != len(UNLABELLED_POOL):
        raise CommandError("POOL_LABELS must give one label (or None) per message of the demo pool.")
    labels = {text: label for label, texts in SEED_SAMPLES.items() for text in texts}
    labels.update({text: label for text, label in zip(UNLABELLED_POOL, POOL_LABELS, strict=True) if label})
    return labels


class Command(BaseCommand):
    help = "Create the certified-labels demo project: offline labels, a quality target and its certificate."

    def handle(self, *args, **options) -> None:
        users = {
            u.username: u for u in get_user_model().objects.filter(username__in=[n for n, _ in DEMO_USERS])
        }
        if len(users) != len(DEMO_USERS):
            raise CommandError("Run `manage.py demo` first: it creates the demo users.")
        lead = users["demo_lead"]
        annotators = [users[name] for name, role in DEMO_USERS if role == Role.ANNOTATOR]
        project = _project(lead, users)
        truth = reference_labels()
        demo_texts_import(
            project, truth, source="demo messages, written by the synthstudio team (unlabelled here)"
        )
        _offline_labels(project, lead)
        certificate = LabelCertificate.objects.filter(project=project).order_by("-id").first()
        if certificate is None:
            certificate = _certify(project, lead, annotators, truth)
        data = (
            certificate_as_dict(certificate, stale=certificate_is_stale(certificate)) if certificate else None
        )
        self.stdout.write(
            f"Certified-labels demo: {project.name} (id {project.id}); "
            + (data["statement"] if data else "no certificate: the quality target did not finish.")
        )


def _project(lead, users) -> Project:
    project = Project.objects.filter(name=PROJECT_NAME, memberships__user=lead).first()
    if project is None:
        project = services.project_create(
            name=PROJECT_NAME,
            description=PROJECT_DESCRIPTION.format(epsilon=TARGET_ERROR, confidence=TARGET_CONFIDENCE),
            user=lead,
        )
    for username, role in DEMO_USERS:
        services.membership_set(project=project, user=users[username], role=role)
    if project.codebook is None:
        services.codebook_create_version(
            project=project,
            user=lead,
            task_description=TASK_DESCRIPTION,
            guidelines=GUIDELINES,
            labels=LABELS,
        )
    return project


def _offline_labels(project: Project, lead) -> None:
    """The offline labeller's run, then the signals run it queued (both in-process)."""
    from annotation.models import LabellingRun

    run = LabellingRun.objects.filter(project=project).order_by("id").first()
    if run is None:
        run = labelling_run_start(project=project, user=lead, method="offline")
    labelling_run_execute(run=run)
    for signals_run in SignalsRun.objects.filter(
        project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ):
        signals_refresh(project=project, run=signals_run)


def _certify(project: Project, lead, annotators, truth: dict[str, str]) -> LabelCertificate | None:
    """Route step by step and let the annotators answer each batch; the policy stays inactive meanwhile, so
    no answer queues a worker task (the steps run here), and is switched on at the end."""
    review_gold_rate_set(project=project, gold_rate=0.0)
    policy = routing_policy_for(project=project)
    policy.strategy = RoutingStrategy.QUALITY_TARGET
    policy.target_error = TARGET_ERROR
    policy.target_confidence = TARGET_CONFIDENCE
    policy.calibration_size = CALIBRATION_SIZE
    policy.annotators_per_item = 1
    policy.is_active = False
    policy.updated_by = lead
    policy.save()
    for _ in range(STEPS):
        routing_route_next_batch(project=project)
        answered = _answer_queue(project, annotators, truth)
        if LabelCertificate.objects.filter(project=project).exists() and not answered:
            break
    policy = routing_policy_for(project=project)
    policy.is_active = True
    policy.save(update_fields=["is_active"])
    return LabelCertificate.objects.filter(project=project).order_by("-id").first()


def _answer_queue(project: Project, annotators, truth: dict[str, str]) -> int:
    """The annotators take turns answering what the queue serves them, with the label the message was written
    for."""
    answered, turn = 0, 0
    idle = 0
    while idle < len(annotators):
        annotator = annotators[turn % len(annotators)]
        turn += 1
        assignment = review_next(project=project, annotator=annotator)
        if assignment is None:
            idle += 1
            continue
        idle = 0
        review_answer_submit(assignment=assignment, label=truth[assignment.task.sample.text])
        answered += 1
    return answered
