"""Core models every app needs: projects and roles, versioned codebooks, samples, labels from LLMs and humans,
embeddings, and the base for background-job rows."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import models
from django.utils import timezone


def text_hash(text: str) -> str:
    """Stable hash of a text, for exact-duplicate detection and the embedding cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    ANNOTATOR = "annotator", "Annotator"


class ProjectQuerySet(models.QuerySet):
    def for_user(self, user) -> ProjectQuerySet:
        """Projects the user belongs to (any role). Staff see nothing extra here: they use the admin."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user).distinct()

    def led_by(self, user) -> ProjectQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user, memberships__role=Role.LEAD).distinct()


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Review settings (the queue issue reads them).
    show_llm_suggestion = models.BooleanField(
        default=True, help_text="Show the LLM's label to reviewers. Turn off for unbiased agreement studies."
    )
    ask_quality_rating = models.BooleanField(
        default=False, help_text="Ask reviewers for an A–D quality rating."
    )
    reservation_minutes = models.PositiveIntegerField(default=30)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def role_of(self, user) -> str | None:
        if not user.is_authenticated:
            return None
        membership = self.memberships.filter(user=user).first()
        return membership.role if membership else None

    @property
    def codebook(self) -> Codebook | None:
        """The current (latest) codebook version."""
        return self.codebooks.order_by("-version").first()


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]
        ordering = ["role", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class Codebook(models.Model):
    """One version of a project's codebook. Edits create a new version; rows that used a codebook point at the
    version they used."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="codebooks")
    version = models.PositiveIntegerField()
    task_description = models.TextField()
    guidelines = models.TextField(blank=True, help_text="Markdown.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="unique_codebook_version")]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project} codebook v{self.version}"

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels.all()]


class Label(models.Model):
    codebook = models.ForeignKey(Codebook, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    examples = models.JSONField(default=list, blank=True, help_text="A list of example texts.")
    hotkey = models.CharField(max_length=1, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["codebook", "name"], name="unique_label_per_codebook")]
        ordering = ["codebook", "order", "id"]

    def __str__(self) -> str:
        return self.name


class Origin(models.TextChoices):
    IMPORTED = "imported", "Imported"
    GENERATED = "generated", "Generated"


class FinalSource(models.TextChoices):
    NONE = "", "Unlabelled"
    LLM = "llm", "LLM"
    HUMAN = "human", "Human"
    ADJUDICATED = "adjudicated", "Adjudicated"


# A final label a reviewer gave or an adjudicator settled: what "human-verified" means everywhere.
HUMAN_VERIFIED_SOURCES = (FinalSource.HUMAN, FinalSource.ADJUDICATED)


class SampleQuerySet(models.QuerySet):
    def human_verified(self) -> SampleQuerySet:
        return self.filter(final_source__in=HUMAN_VERIFIED_SOURCES)


class Sample(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="samples")
    text = models.TextField()
    fields = models.JSONField(
        default=dict, blank=True, help_text="Optional structured fields shown with the text."
    )
    text_hash = models.CharField(max_length=64, db_index=True)
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.IMPORTED)
    provenance = models.JSONField(default=dict, blank=True)
    is_seed = models.BooleanField(
        default=False, help_text="Seed samples feed the demo pool and offline generator."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The current final label, kept up to date by annotation.refinement (adjudicated > human > LLM).
    final_label = models.CharField(max_length=100, blank=True)
    final_source = models.CharField(max_length=20, choices=FinalSource.choices, blank=True, default="")
    final_weight = models.FloatField(default=0.0)
    # A lead's bulk action on the samples page: curated snapshots leave the sample out (evaluation.curation).
    excluded_from_snapshots = models.BooleanField(default=False)

    objects = SampleQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "final_source"]),
            models.Index(fields=["project", "text_hash"]),
            # the samples page's filters (synthstudio.sample_search)
            models.Index(fields=["project", "origin"]),
            models.Index(fields=["project", "final_label"]),
        ]

    def __str__(self) -> str:
        return self.text[:60]

    def current_llm_annotation(self) -> LLMAnnotation | None:
        """The sample's current valid LLM label (the one suggestions, agreement and final labels use), or None."""
        return self.llm_annotations.filter(is_current=True, valid=True).first()

    def save(self, *args, **kwargs) -> None:
        self.text_hash = text_hash(self.text)
        super().save(*args, **kwargs)


class LabelMethod(models.TextChoices):
    LOGPROBS = "logprobs", "Token logprobs"
    SELF_CONSISTENCY = "self_consistency", "Self-consistency"
    PROMPT_VARIANTS = "prompt_variants", "Prompt variants"
    VERBALISED = "verbalised", "Verbalised confidence"
    IMPORTED = "imported", "Imported"
    OFFLINE = "offline", "Offline (embedding zero-shot)"


class LLMAnnotation(models.Model):
    """An LLM's label for a sample, with a probability distribution over the codebook's labels.

    `label` is empty and `valid` False when the response named no label of the codebook: recorded, not guessed.
    """

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="llm_annotations")
    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    distribution = models.JSONField(default=dict, help_text="{label: probability}, sums to 1 when valid.")
    confidence = models.FloatField(null=True, blank=True, help_text="Probability of `label`.")
    method = models.CharField(max_length=30, choices=LabelMethod.choices)
    model_name = models.CharField(max_length=200, blank=True)
    rationale = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    valid = models.BooleanField(default=True)
    run_ref = models.CharField(
        max_length=100, blank=True, help_text="Which run made it, e.g. 'labelling:12'."
    )
    is_current = models.BooleanField(default=True, help_text="The newest annotation for the sample.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["sample", "is_current"]),
            # the samples page's "LLM label" filter (synthstudio.sample_search): the current labels only
            models.Index(
                fields=["label", "sample"],
                condition=models.Q(is_current=True, valid=True),
                name="llm_annotation_current_label",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label or '(no valid label)'} via {self.method}"


class HumanSource(models.TextChoices):
    REVIEW = "review", "Review queue"
    IMPORTED = "imported", "Imported"
    ADJUDICATION = "adjudication", "Adjudication"


class QualityRating(models.TextChoices):
    A = "A", "A — valid and satisfying"
    B = "B", "B — acceptable, minor imperfections"
    C = "C", "C — responds but significant errors"
    D = "D", "D — irrelevant or invalid"


class FlagReason(models.TextChoices):
    NONE = "", "—"
    UNFAITHFUL = "unfaithful", "Unfaithful"
    HARMFUL = "harmful", "Harmful"
    OFF_TOPIC = "off_topic", "Off-topic"
    DUPLICATE = "duplicate", "Duplicate"
    OTHER = "other", "Other"


class HumanAnnotation(models.Model):
    """A human's answer about a sample: a label (or an imported gold/human label), optional rating, flag, edit."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="human_annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="annotations"
    )
    # The version the annotator saw.
    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    source = models.CharField(max_length=20, choices=HumanSource.choices, default=HumanSource.REVIEW)
    label = models.CharField(max_length=100, blank=True)
    rating = models.CharField(max_length=1, choices=QualityRating.choices, blank=True)
    flag = models.CharField(max_length=20, choices=FlagReason.choices, blank=True)
    flag_note = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    edited_text = models.TextField(blank=True, help_text="The annotator's corrected text, if they edited it.")
    agreed_with_llm = models.BooleanField(null=True, blank=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the samples page's "flagged" filter (synthstudio.sample_search): few rows, so a small index
            models.Index(fields=["sample"], condition=~models.Q(flag=""), name="human_annotation_flagged")
        ]

    def __str__(self) -> str:
        return f"{self.label} by {self.annotator or self.source}"


class Embedding(models.Model):
    """One embedding per (model, text hash): computed once, reused by every project and strategy."""

    model_name = models.CharField(max_length=300)
    text_hash = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32 little-endian bytes")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_name", "text_hash"], name="one_embedding_per_text")
        ]

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BackgroundJob(models.Model):
    """Base for every `...Run`/`...Job` row: status, progress counts, timestamps, heartbeat and error text.
    Pages poll the row; workers update it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The lease (synthstudio.jobs): which worker process runs the job, and how many times one started it.
    lease_holder = models.CharField(
        max_length=255, blank=True, help_text="pid@host of the process running it."
    )
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started the job.")

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_finished(self) -> bool:
        return self.status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}

    @property
    def job_kind(self) -> str:
        """'app.model': names the kind in the generic job URLs (Retry)."""
        return self._meta.label_lower

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return min(100, int(100 * (self.done + self.failed) / self.total))

    def mark_running(self) -> None:
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(
            status=JobStatus.RUNNING, started_at=self.started_at or now, heartbeat_at=now
        )
        self.refresh_from_db()

    def mark_finished(self, status: str, *, error: str = "", message: str = "") -> None:
        self.status, self.error, self.finished_at = status, error, timezone.now()
        if message:
            self.message = message
        self.save(update_fields=["status", "error", "finished_at", "message"])

    def report_progress(self, **counts: int) -> None:
        """Set progress counts (done=..., failed=..., total=...) and beat the heartbeat."""
        for name, value in counts.items():
            setattr(self, name, value)
        self.heartbeat_at = timezone.now()
        self.save(update_fields=[*counts.keys(), "heartbeat_at"])


class ImportJob(BackgroundJob):
    """An upload being parsed and imported. All-or-nothing: either every row lands or none does."""

    original_name = models.CharField(max_length=300)
    stored_path = models.CharField(max_length=500)
    file_format = models.CharField(max_length=10)
    size_bytes = models.BigIntegerField(default=0)
    mapping = models.JSONField(default=dict)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    bad_row = models.PositiveIntegerField(null=True, blank=True)
    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, null=True, blank=True, related_name="+")


class SampleAction(models.TextChoices):
    """The samples page's bulk actions (carried out by annotation.samples: routing and gold live there)."""

    SEND_TO_REVIEW = "send_to_review", "Send to review"
    MARK_GOLD = "mark_gold", "Mark gold (with the final label)"
    EXCLUDE = "exclude", "Exclude from snapshots"
    INCLUDE = "include", "Include in snapshots"


class SampleActionJob(BackgroundJob):
    """A bulk action over more samples than a request should touch, run by a worker. The ids are frozen when
    the lead starts it, so the job acts on exactly what matched the filter then; re-running it is harmless
    (every action skips samples it already applies to)."""

    action = models.CharField(max_length=30, choices=SampleAction.choices)
    sample_ids = models.JSONField(default=list)
    search = models.JSONField(
        default=dict, blank=True, help_text="The filter the ids matched, for the record."
    )
    changed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)


class WorkerHeartbeat(models.Model):
    """Written by every live Celery worker every few seconds; the page says "no worker is running" when jobs
    wait and no heartbeat is fresh."""

    hostname = models.CharField(max_length=300, unique=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    @classmethod
    def any_alive(cls) -> bool:
        stale = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
        return cls.objects.filter(last_seen__gte=stale).exists()


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> InvitationQuerySet:
        """Neither accepted nor revoked, and not expired yet."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """A lead's invitation to join a project with a role (synthstudio.invitations).

    Only a SHA-256 hash of the link's token is stored, so a database reader cannot use an invitation; the token
    itself is shown (or mailed) once, when the invitation is made. Single use: `accepted_at` is set once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    email = models.EmailField(blank=True, help_text="Whom it was sent to (invitations by email).")
    # Invitations by username are for that existing account only.
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invitation of {self.invited_name} to {self.project} as {self.role}"

    @property
    def invited_name(self) -> str:
        return self.invitee.username if self.invitee_id and self.invitee else self.email
