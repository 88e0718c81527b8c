"""factory_boy factories: one row of every kind a URL of the studio points at, with sensible defaults.

Each factory makes a row that belongs to one project (pass `project=`), so a test can build the same objects
in two projects and check that one project's ids never open the other's pages. Rows that only a service can
make consistently (the review queue's slots, an API token's hash) are made by calling that service.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import Assignment, GoldItem, LabellingRun, SampleTextVersion, SignalsRun
from annotation.review import queue as review
from annotation.review.answers import review_answer_submit
from evaluation.curation import services as curation_services
from evaluation.models import (
    BenchmarkRun,
    ExportJob,
    JudgeKind,
    JudgeRun,
    LabelStudioImportJob,
    MetricsRefresh,
    PairwiseItem,
    RefinementRun,
    Snapshot,
    SnapshotJob,
)
from generation.models import (
    ConditionValueProposal,
    GenerationConfig,
    GenerationItem,
    GenerationRun,
    ItemStatus,
    LLMEndpoint,
)
from synthstudio.invitations import token_hash as invitation_token_hash
from synthstudio.models import (
    Codebook,
    ImportJob,
    Invitation,
    JobStatus,
    Label,
    LabelMethod,
    Membership,
    Project,
    Role,
    Sample,
    SampleAction,
    SampleActionJob,
)

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    created_by = factory.SubFactory(UserFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


class InvitationFactory(factory.django.DjangoModelFactory):
    """A pending invitation by email; its token is `token` (only the hash is stored, as the service does)."""

    class Meta:
        model = Invitation
        exclude = ("token",)

    project = factory.SubFactory(ProjectFactory)
    role = Role.ANNOTATOR
    email = factory.Sequence(lambda n: f"invitee{n}@example.org")
    token = factory.Sequence(lambda n: f"test-invitation-token-{n}")
    token_hash = factory.LazyAttribute(lambda row: invitation_token_hash(row.token))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class CodebookFactory(factory.django.DjangoModelFactory):
    """A codebook version with two labels, positive and negative (hotkeys 1 and 2)."""

    class Meta:
        model = Codebook

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: n + 1)
    task_description = "Classify the sentiment of a film review."
    guidelines = "Judge the **reviewer's** opinion, not the plot."
    positive = factory.RelatedFactory(
        "tests.factories.LabelFactory", factory_related_name="codebook", name="positive", hotkey="1", order=0
    )
    negative = factory.RelatedFactory(
        "tests.factories.LabelFactory", factory_related_name="codebook", name="negative", hotkey="2", order=1
    )


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    codebook = factory.SubFactory(CodebookFactory)
    name = factory.Sequence(lambda n: f"label{n}")
    description = factory.LazyAttribute(lambda label: f"The review is {label.name}.")
    examples = factory.LazyAttribute(lambda label: [f"A {label.name} review."])


class SampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sample

    project = factory.SubFactory(ProjectFactory)
    text = factory.Sequence(lambda n: f"Film review number {n}: the plot twists and the score soars.")
    is_seed = True


class ImportJobFactory(factory.django.DjangoModelFactory):
    """An uploaded file waiting for its column mapping; pass `stored_path` of a real file to preview it."""

    class Meta:
        model = ImportJob

    project = factory.SubFactory(ProjectFactory)
    original_name = "reviews.csv"
    stored_path = ""
    file_format = "csv"
    status = JobStatus.QUEUED


class SampleActionJobFactory(factory.django.DjangoModelFactory):
    """A finished bulk action of the samples page."""

    class Meta:
        model = SampleActionJob

    project = factory.SubFactory(ProjectFactory)
    action = SampleAction.EXCLUDE
    status = JobStatus.SUCCEEDED
    total = 1001


class LLMEndpointFactory(factory.django.DjangoModelFactory):
    """A project's endpoint on a closed local port: a connection test fails at once, with no network."""

    class Meta:
        model = LLMEndpoint

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"endpoint {n}")
    base_url = "http://127.0.0.1:9/v1"
    model = "test-model"
    timeout_seconds = 1.0
    max_retries = 0


class GenerationConfigFactory(factory.django.DjangoModelFactory):
    """An offline config (no endpoint) with one condition dimension."""

    class Meta:
        model = GenerationConfig

    project = factory.SubFactory(ProjectFactory)
    name = "reviews"
    version = 1
    codebook = factory.LazyAttribute(lambda config: config.project.codebook)
    template = "Write a {{ label }} film review about a {{ genre }} film."
    dimensions = factory.LazyFunction(lambda: [{"name": "genre", "values": ["noir", "comedy"]}])
    target_count = 4


class GenerationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationRun

    config = factory.SubFactory(GenerationConfigFactory)
    project = factory.SelfAttribute("config.project")
    model_name = "offline-markov"
    status = JobStatus.SUCCEEDED
    total = 1
    done = 1


class GenerationItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationItem

    run = factory.SubFactory(GenerationRunFactory)
    index = factory.Sequence(lambda n: n)
    conditions = factory.LazyFunction(lambda: {"genre": "noir", "label": "positive"})
    status = ItemStatus.DONE
    parse_status = "ok"
    raw_output = "A moody noir with a score that soars."
    label = "positive"


class ConditionValueProposalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConditionValueProposal

    config = factory.SubFactory(GenerationConfigFactory)
    dimension = "genre"
    value = "western"
    source = "offline"


class LabellingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabellingRun

    project = factory.SubFactory(ProjectFactory)
    codebook = factory.LazyAttribute(lambda run: run.project.codebook)
    method = LabelMethod.OFFLINE
    status = JobStatus.SUCCEEDED


class SignalsRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SignalsRun

    project = factory.SubFactory(ProjectFactory)
    status = JobStatus.SUCCEEDED


def reserved_assignment(*, project: Project, annotator, sample: Sample | None = None) -> Assignment:
    """The annotator's live reservation of a sample, reserved the way the queue does it (slots counted)."""
    sample = sample or SampleFactory(project=project)
    review.review_tasks_create(project=project, samples_with_reasons=[(sample, "routed for the test", 1e9)])
    assignment = review.review_next(project=project, annotator=annotator)
    assert assignment is not None and assignment.task.sample_id == sample.pk, "the queue served another item"
    return Assignment.objects.get(pk=assignment.pk)


def answered_assignment(*, project: Project, annotator, label: str = "positive") -> Assignment:
    """An assignment the annotator has answered through the queue (so it can be edited)."""
    assignment = reserved_assignment(project=project, annotator=annotator)
    review_answer_submit(assignment=assignment, label=label, codebook=project.codebook)
    return Assignment.objects.get(pk=assignment.pk)


class GoldItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GoldItem

    project = factory.SubFactory(ProjectFactory)
    sample = factory.SubFactory(SampleFactory, project=factory.SelfAttribute("..project"))
    label = "positive"


class TextCorrectionFactory(factory.django.DjangoModelFactory):
    """An annotator's pending correction of a sample's text (pass sample__project=…)."""

    class Meta:
        model = SampleTextVersion

    sample = factory.SubFactory(SampleFactory)
    version = factory.Sequence(lambda n: n + 1)
    text = factory.LazyAttribute(lambda row: f"{row.sample.text} (corrected)")


class SnapshotFactory(factory.django.DjangoModelFactory):
    """A ready snapshot with no rows: enough for its pages (snapshot_create makes full ones)."""

    class Meta:
        model = Snapshot

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: n + 1)
    label_policy = "adjudicated > human majority > LLM"
    label_names = factory.LazyFunction(lambda: ["positive", "negative"])


class SnapshotJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SnapshotJob

    project = factory.SubFactory(ProjectFactory)
    status = JobStatus.QUEUED


class ExportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExportJob

    snapshot = factory.SubFactory(SnapshotFactory)
    project = factory.SelfAttribute("snapshot.project")
    file_format = "parquet"
    status = JobStatus.QUEUED


class RefinementRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RefinementRun

    project = factory.SubFactory(ProjectFactory)
    status = JobStatus.SUCCEEDED
    result = factory.LazyFunction(lambda: {"issues": []})


class LabelStudioImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelStudioImportJob

    project = factory.SubFactory(ProjectFactory)
    original_name = "export.json"
    status = JobStatus.QUEUED


class BenchmarkRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BenchmarkRun

    project = factory.SubFactory(ProjectFactory)
    status = JobStatus.QUEUED


class JudgeRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JudgeRun

    project = factory.SubFactory(ProjectFactory)
    kind = JudgeKind.RATING
    model_name = "offline-judge"
    is_offline = True
    status = JobStatus.QUEUED


class MetricsRefreshFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MetricsRefresh

    project = factory.SubFactory(ProjectFactory)
    data_version = "v-test"
    status = JobStatus.QUEUED


class PairwiseItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PairwiseItem

    project = factory.SubFactory(ProjectFactory)
    prompt = "Review a noir film."
    response_a = "Shadows, rain and a score that soars."
    response_b = "It was a film. It had scenes."
    source_a = "config a"
    source_b = "config b"


def api_token(user) -> str:
    """A new API token of the user; the raw value (only its hash is stored)."""
    return curation_services.api_token_create(user=user, name="test")[1]
