"""Models of the annotation app: routing into the review queue.

ReviewTask: one routed sample waiting for `required_answers` distinct human answers.
Assignment: one annotator's reservation of a task, ending answered, skipped or expired.
(LLM labels and human answers themselves are core models: synthstudio.models.LLMAnnotation/HumanAnnotation.)
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from synthstudio.models import BackgroundJob, Codebook, HumanAnnotation, LabelMethod, Project, Sample


class TaskKind(models.TextChoices):
    ROUTED = "routed", "Routed for review"
    COLD_START = "cold_start", "Cold start"
    GOLD = "gold", "Gold check"
    LABEL_ISSUE = "label_issue", "Likely label error"
    MANUAL = "manual", "Sent by a lead"


class ReviewTaskQuerySet(models.QuerySet):
    def claimable_by(self, annotator, *, gold: bool) -> ReviewTaskQuerySet:
        """Open tasks the annotator may claim now, in serving order. Regular tasks need a free slot
        (`claimed_count < required_answers`: the predicate of the partial index review_task_claimable, so the
        scan follows that index) and are served highest priority first; gold tasks have no overlap limit
        (everyone answers each gold item once) and are served oldest first. Either way, never a task the
        annotator has answered, skipped or holds a reservation for: their own row for the task (at most one)
        must be missing, expired or released. Each task carries that row's status as `own_status` ("" for none).

        That row's status is read by a scalar subquery: one index probe by task per candidate, whatever the
        table statistics say. NOT EXISTS would read more naturally, but PostgreSQL turns it into an anti-join
        whose plan depends on them: on a freshly routed queue (before autovacuum's ANALYZE) it scanned the
        annotator's whole history once per candidate (EXPLAIN ANALYZE in bench_review's database)."""
        own_status = Assignment.objects.filter(task=OuterRef("pk"), annotator=annotator).values("status")[:1]
        tasks = self.annotate(own_status=Coalesce(Subquery(own_status), Value(""))).filter(
            is_open=True, own_status__in=("", *REOPENABLE)
        )
        if gold:
            return tasks.filter(kind=TaskKind.GOLD).order_by("id")
        return (
            tasks.exclude(kind=TaskKind.GOLD)
            .filter(claimed_count__lt=F("required_answers"))
            .order_by("-priority", "id")
        )

    def take_slot(self, *, gold: bool) -> int:
        """Take one slot of each task that has one free: a conditional UPDATE, so concurrent claims never take
        more slots than `required_answers`. Gold tasks have no overlap limit. Returns how many were taken."""
        tasks = self.filter(is_open=True)
        if not gold:
            tasks = tasks.filter(claimed_count__lt=F("required_answers"))
        return tasks.update(claimed_count=F("claimed_count") + 1)

    def give_back_slot(self) -> int:
        """A reservation ended without an answer (expired, skipped, released): its slot is free again."""
        return self.update(claimed_count=F("claimed_count") - 1)

    def count_answer(self) -> int:
        """One more answer on each task; a regular task closes with its required answers, gold checks stay open."""
        closes = Q(required_answers__lte=F("answers_count") + 1) & ~Q(kind=TaskKind.GOLD)
        return self.update(
            answers_count=F("answers_count") + 1,
            is_open=Case(When(closes, then=Value(False)), default=F("is_open")),
        )

    def uncount_answer(self) -> int:
        """An answer was taken back (undo): one answer fewer, and the task is open again for it."""
        return self.update(answers_count=F("answers_count") - 1, is_open=True)


class ReviewTask(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_tasks")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="review_tasks")
    kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.ROUTED)
    priority = models.FloatField(default=0.0, help_text="Higher is served first.")
    reason = models.CharField(max_length=300, blank=True, help_text='Why it was routed, e.g. "entropy 0.93".')
    strategy = models.CharField(max_length=50, blank=True)
    batch = models.PositiveIntegerField(default=0)
    required_answers = models.PositiveIntegerField(default=1)
    answers_count = models.PositiveIntegerField(default=0)
    is_open = models.BooleanField(default=True, help_text="False once it has its required answers.")
    # Slots taken: live reservations + answers. The review queue claims a slot with a conditional UPDATE
    # (claimed_count < required_answers), so an item never goes to more annotators than its overlap.
    claimed_count = models.PositiveIntegerField(default=0)
    # The probability with which the routing policy picked this item in its batch (ALGORITHMS.md §8): 1 for a
    # deterministic top-k pick, the recorded Poisson probability for an audit or estimation draw. Null for tasks
    # routed before π was recorded (estimates say they lack an audit sample) and for kinds routing does not make.
    inclusion_probability = models.FloatField(null=True, blank=True, editable=False)
    # Drawn by the audit slice (or the quality-target calibration), i.e. with a known π < 1 over every candidate;
    # never shown to annotators.
    is_audit = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [
            models.Index(fields=["project", "is_open", "-priority"]),
            # the queue's next item: open tasks with a free slot, in serving order (ReviewTask.objects.claimable_by)
            models.Index(
                fields=["project", "-priority", "id"],
                condition=Q(is_open=True, claimed_count__lt=F("required_answers")),
                name="review_task_claimable",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} for sample {self.sample_id}"


class AssignmentStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    ANSWERED = "answered", "Answered"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released by a lead"


# After these an item does not come back to the same annotator (a live reservation is "taken" too).
TAKEN_BY_ANNOTATOR = (AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED, AssignmentStatus.RESERVED)
# An annotator's expired or released row is reserved again when they claim the task anew: one row per pair.
REOPENABLE = (AssignmentStatus.EXPIRED, AssignmentStatus.RELEASED)


class AssignmentQuerySet(models.QuerySet):
    def of_annotator(self, annotator, project: Project) -> AssignmentQuerySet:
        """One annotator's rows in one project: the leading columns of the index assignment_by_annotator."""
        return self.filter(annotator=annotator, project=project)

    def live_for(self, annotator, project: Project) -> AssignmentQuerySet:
        """The annotator's reservations in the project that have not expired, newest first."""
        return (
            self.of_annotator(annotator, project)
            .filter(status=AssignmentStatus.RESERVED, expires_at__gt=timezone.now())
            .order_by("-reserved_at", "-id")
        )

    def answered(self) -> AssignmentQuerySet:
        return self.filter(status=AssignmentStatus.ANSWERED)

    def taken(self) -> AssignmentQuerySet:
        return self.filter(status__in=TAKEN_BY_ANNOTATOR)


class Assignment(models.Model):
    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="assignments")
    # = task.project, kept on the row so an annotator's counts and reservations read one index, without a join.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # no index of its own: assignment_by_annotator starts with it (a lone annotator index also tempted the planner
    # into scanning an annotator's whole history for each candidate task)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    status = models.CharField(
        max_length=20, choices=AssignmentStatus.choices, default=AssignmentStatus.RESERVED
    )
    reserved_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.OneToOneField(
        HumanAnnotation, on_delete=models.SET_NULL, null=True, blank=True, related_name="assignment"
    )
    skip_reason = models.CharField(max_length=300, blank=True)
    # The id the item form carried when it was answered: a repeated POST of the same form stores no second answer.
    submission_id = models.CharField(max_length=64, blank=True)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        constraints = [
            # never the same annotator twice on one task
            models.UniqueConstraint(fields=["task", "annotator"], name="one_assignment_per_annotator"),
        ]
        indexes = [
            models.Index(
                fields=["annotator", "project", "status", "answered_at"], name="assignment_by_annotator"
            )
        ]


class GoldItem(models.Model):
    """A sample whose answer a lead knows. Gold tasks are mixed into every annotator's queue at the project's
    gold rate; an annotator's accuracy on gold is the share of their gold answers that match `label`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_items")
    sample = models.OneToOneField(Sample, on_delete=models.CASCADE, related_name="gold_item")
    label = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"gold {self.label} for sample {self.sample_id}"


class LabelAggregation(models.TextChoices):
    MAJORITY = "majority", "Majority vote (a tie goes to adjudication)"
    DAWID_SKENE = "dawid_skene", "Dawid–Skene (weighs each annotator by estimated accuracy, anchored on gold)"


class ReviewSettings(models.Model):
    """Per-project settings of the review queue that the core Project does not carry."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="review_settings")
    gold_rate = models.FloatField(
        default=0.1, help_text="Share of an annotator's items that are gold checks (0 turns gold off)."
    )
    label_aggregation = models.CharField(
        max_length=20,
        choices=LabelAggregation.choices,
        default=LabelAggregation.MAJORITY,
        help_text="How several annotators' answers become a sample's final label.",
    )
    # the last Dawid–Skene fit (annotation.review.aggregation.DawidSkeneFit.as_json() + "fitted_at")
    annotator_reliability = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"review settings of {self.project}"


class CorrectionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Replaced by its author's later edit"


class SampleTextVersion(models.Model):
    """A reviewer's correction of a sample's text. Sample.text stays the original (what was generated or
    imported, what the LLM labelled); corrections are kept here as numbered versions, newest last.

    A lead accepts or rejects each one (annotation.review.corrections); a sample has at most one accepted
    correction, and that text is the sample's current text for curation and snapshots. Pending ones are unused."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="text_versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    annotation = models.ForeignKey(
        HumanAnnotation, on_delete=models.SET_NULL, null=True, blank=True, related_name="text_versions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=20, choices=CorrectionStatus.choices, default=CorrectionStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sample", "version"], name="unique_sample_text_version"),
            # the lead picks one text when annotators corrected a sample differently
            models.UniqueConstraint(
                fields=["sample"],
                condition=Q(status=CorrectionStatus.ACCEPTED),
                name="one_accepted_text_per_sample",
            ),
        ]
        indexes = [models.Index(fields=["status", "sample"], name="text_version_by_status")]
        ordering = ["sample", "version"]

    def __str__(self) -> str:
        return f"sample {self.sample_id} text v{self.version}"


# ---- LLM labelling and routing (issue 4) ----------------------------------------------------------------


class LabellingRunKind(models.TextChoices):
    LABEL = "label", "Label samples"
    REFINE = "refine", "Refine noisy labels (FreeAL loop)"


class LabellingRun(BackgroundJob):
    """One pass of an LLM (or the offline labeller) over a project's samples. Each labelled sample gets a new
    current LLMAnnotation with run_ref "labelling:<id>"; a re-run skips samples this run already labelled.

    kind "refine" (annotation.labelling.refine): FreeAL's loop instead — the student's noisy items are
    re-labelled with demos from its clean set, up to max_passes times; `passes` records each pass."""

    kind = models.CharField(max_length=10, choices=LabellingRunKind.choices, default=LabellingRunKind.LABEL)
    max_passes = models.PositiveIntegerField(
        default=3,
        help_text="Refine runs: re-label passes at most (fewer when the noisy set stops shrinking).",
    )
    passes = models.JSONField(
        default=list, blank=True, help_text="Refine runs: per pass {pass, noisy, relabelled, changed}."
    )

    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(
        "generation.LLMEndpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the offline labeller.",
    )
    method = models.CharField(max_length=30, choices=LabelMethod.choices, default=LabelMethod.LOGPROBS)
    model_name = models.CharField(max_length=200, blank=True)
    samples_per_item = models.PositiveIntegerField(
        default=5,
        help_text="Self-consistency: answers per item; prompt variants: paraphrased prompts per item.",
    )
    temperature = models.FloatField(default=0.7, help_text="Used by self-consistency (must be above 0).")
    demo_count = models.PositiveIntegerField(
        default=0, help_text="In-context demos per item: human-verified items most similar to the item."
    )
    only_unlabelled = models.BooleanField(
        default=True, help_text="Skip samples that already have an LLM label."
    )
    invalid = models.PositiveIntegerField(default=0, help_text="Answers naming no valid label (recorded).")
    cached = models.PositiveIntegerField(default=0, help_text="LLM calls answered from the cache.")

    @property
    def is_offline(self) -> bool:
        return self.method == LabelMethod.OFFLINE

    @property
    def run_ref(self) -> str:
        return f"labelling:{self.pk}"

    def __str__(self) -> str:
        return f"labelling run {self.pk} ({self.method})"


class SignalsRun(BackgroundJob):
    """Embeddings (in batches, cached per model and text) and per-sample signals for routing."""

    model_name = models.CharField(max_length=300, blank=True)


class SampleSignalsQuerySet(models.QuerySet):
    def for_project(self, project: Project) -> SampleSignalsQuerySet:
        return self.filter(sample__project=project)


class SampleSignals(models.Model):
    """Per-sample routing signals, recomputed by a SignalsRun (annotation.signals does the maths)."""

    sample = models.OneToOneField(Sample, on_delete=models.CASCADE, related_name="signals")
    llm_label = models.CharField(max_length=100, blank=True)
    least_confidence = models.FloatField(null=True, blank=True)
    margin = models.FloatField(null=True, blank=True, help_text="p(1) − p(2); small is uncertain.")
    entropy = models.FloatField(null=True, blank=True)
    student_probability = models.FloatField(
        null=True, blank=True, help_text="Out-of-fold probability a student model gives the LLM's label."
    )
    student_label = models.CharField(max_length=100, blank=True)
    knn_agreement = models.FloatField(
        null=True, blank=True, help_text="Share of nearest neighbours with the same label."
    )
    duplicate_of = models.ForeignKey(
        Sample, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    computed_at = models.DateTimeField(auto_now=True)

    objects = SampleSignalsQuerySet.as_manager()

    def __str__(self) -> str:
        return f"signals of sample {self.sample_id}"


class BudgetKind(models.TextChoices):
    COUNT = "count", "A number of items"
    SHARE = "share", "A share of all items"


class RoutingStrategy(models.TextChoices):
    RANDOM = "random", "Random"
    LEAST_CONFIDENCE = "least_confidence", "Least confidence"
    MARGIN = "margin", "Smallest margin"
    ENTROPY = "entropy", "Highest entropy"
    KMEANS = "kmeans", "k-means (diverse)"
    VOTEK = "votek", "vote-k (diverse, representative)"
    VOTEK_TWO_STAGE = "votek_two_stage", "vote-k, two-stage (diverse + uncertain)"
    COANNOTATING = "coannotating", "CoAnnotating (entropy over prompt variants)"
    LEARNED = "learned", "Learned router (predicts LLM errors from reviews)"
    ESTIMATION = "estimation", "Sample for estimation (confidence-driven, unbiased estimates)"
    QUALITY_TARGET = "quality_target", "Quality target (certified error rate)"


class CertifyScore(models.TextChoices):
    LLM = "llm", "The LLM's uncertainty (1 − confidence)"
    LEARNED = "learned", "The learned router's predicted error (cross-fitted)"


class ColdStartStrategy(models.TextChoices):
    RANDOM = "random", "Random"
    KMEANS = "kmeans", "k-means"
    VOTEK = "votek", "vote-k"


class RoutingPolicy(models.Model):
    """How a project spends its human budget. Routing creates ReviewTasks batch by batch, never beyond the
    budget, never the same sample twice."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="routing_policy")
    budget_kind = models.CharField(max_length=10, choices=BudgetKind.choices, default=BudgetKind.SHARE)
    budget_count = models.PositiveIntegerField(default=100, help_text="Items humans review, when a number.")
    budget_share = models.FloatField(
        default=0.2, help_text="Share of items humans review (0–1), when a share."
    )
    strategy = models.CharField(
        max_length=30, choices=RoutingStrategy.choices, default=RoutingStrategy.ENTROPY
    )
    batch_size = models.PositiveIntegerField(
        default=50, help_text="Items routed at a time; the next batch follows its answers."
    )
    annotators_per_item = models.PositiveIntegerField(
        default=1, help_text="Distinct annotators per routed item."
    )
    cold_start_size = models.PositiveIntegerField(
        default=0,
        help_text="Items picked for diversity before any uncertainty routing (the learned router needs some).",
    )
    cold_start_strategy = models.CharField(
        max_length=20, choices=ColdStartStrategy.choices, default=ColdStartStrategy.VOTEK
    )
    is_active = models.BooleanField(
        default=True, help_text="Route the next batch automatically as answers arrive."
    )
    audit_share = models.FloatField(
        default=0.1,
        help_text="Share of each batch drawn at random with a recorded probability (0–0.5), so that estimates "
        "stay unbiased whatever the strategy. 0 turns the audit slice off.",
    )
    target_error = models.FloatField(
        default=0.05, help_text="Quality target: the largest share of wrong final labels allowed (ε)."
    )
    target_confidence = models.FloatField(
        default=0.95, help_text="Quality target: the probability with which the error stays below ε (1 − α)."
    )
    calibration_size = models.PositiveIntegerField(
        default=300,
        help_text="Quality target: human answers drawn at random before the threshold is set (the learned score "
        "first fits on as many again).",
    )
    certify_score = models.CharField(
        max_length=10,
        choices=CertifyScore.choices,
        default=CertifyScore.LLM,
        help_text="Quality target: which uncertainty ranks the items.",
    )
    quality_state = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Quality target: the phase and what the bound needs (draws, probabilities, threshold).",
    )
    next_batch_queued_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the last answer of a batch queued the next one for a worker; cleared once it is routed.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "routing policies"

    def __str__(self) -> str:
        return f"routing policy of {self.project}"

    @staticmethod
    def active_cache_key(project: Project) -> str:
        """Where annotation.routing.services.routing_policy_active caches whether the project's policy is active
        (the creation time guards against a reused id, e.g. in a benchmark's throwaway database)."""
        return f"routing-policy-active:{project.pk}:{project.created_at.timestamp()}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        self.forget_cached_activity()

    def delete(self, *args, **kwargs):
        self.forget_cached_activity()
        return super().delete(*args, **kwargs)

    def forget_cached_activity(self) -> None:
        """Every save (the routing page, the admin, update_or_create) clears this process's cached "active?"
        answer, now and again on commit in case a reader cached the old answer before the commit; other
        processes see the change within routing.services.ROUTING_ACTIVE_CACHE_SECONDS."""
        key = self.active_cache_key(self.project)
        cache.delete(key)
        transaction.on_commit(lambda: cache.delete(key))

    def budget_items(self, sample_count: int) -> int:
        """The human budget in items for a project of `sample_count` samples."""
        if self.budget_kind == BudgetKind.COUNT:
            return min(self.budget_count, sample_count)
        return min(sample_count, int(round(self.budget_share * sample_count)))


class LabelCertificate(models.Model):
    """A PAC-labelling certificate (ALGORITHMS.md §8): with probability ≥ confidence, at most `epsilon` of the
    project's final labels are wrong, given that the reviewers are right. Written when a quality-target policy
    has its calibration answers; `labels_digest` fingerprints the samples and final labels it speaks for, so a
    later change marks it stale."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_certificates")
    created_at = models.DateTimeField(auto_now_add=True)
    epsilon = models.FloatField()
    confidence = models.FloatField(help_text="1 − α.")
    score = models.CharField(max_length=10, choices=CertifyScore.choices, default=CertifyScore.LLM)
    threshold = models.FloatField(
        null=True, blank=True, help_text="Humans label items with uncertainty ≥ this."
    )
    upper_bound = models.FloatField(help_text="The (1 − α) upper bound on the error of the kept LLM labels.")
    estimated_error = models.FloatField()
    error_ci_low = models.FloatField()
    error_ci_high = models.FloatField()
    item_count = models.PositiveIntegerField()
    human_count = models.PositiveIntegerField(
        help_text="Items a human labelled (calibration + above threshold)."
    )
    calibration_count = models.PositiveIntegerField()
    reviewer_agreement = models.JSONField(
        default=dict,
        blank=True,
        help_text="Measured reviewer agreement beside the 'reviewers are right' assumption.",
    )
    labels_digest = models.CharField(max_length=64)
    is_offline = models.BooleanField(default=False, help_text="LLM labels came from an offline stand-in.")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["project", "-created_at"]

    def __str__(self) -> str:
        return f"certificate of {self.project} (ε={self.epsilon:g})"

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    @property
    def human_share(self) -> float:
        return self.human_count / self.item_count if self.item_count else 0.0
