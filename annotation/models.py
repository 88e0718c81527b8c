"""Models of the annotation app: routing into the review queue.

ReviewTask: one routed sample waiting for `required_answers` distinct human answers.
Assignment: one annotator's reservation of a task, ending answered, skipped or expired.
(LLM labels and human answers themselves are core models: synthstudio.models.LLMAnnotation/HumanAnnotation.)
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from synthstudio.models import HumanAnnotation, Project, Sample


class TaskKind(models.TextChoices):
    ROUTED = "routed", "Routed for review"
    COLD_START = "cold_start", "Cold start"
    GOLD = "gold", "Gold check"
    LABEL_ISSUE = "label_issue", "Likely label error"
    MANUAL = "manual", "Sent by a lead"


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [models.Index(fields=["project", "is_open", "-priority"])]

    def __str__(self) -> str:
        return f"task {self.pk} for sample {self.sample_id}"


class AssignmentStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    ANSWERED = "answered", "Answered"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released by a lead"


class Assignment(models.Model):
    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=20, choices=AssignmentStatus.choices, default=AssignmentStatus.RESERVED)
    reserved_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.OneToOneField(
        HumanAnnotation, on_delete=models.SET_NULL, null=True, blank=True, related_name="assignment"
    )
    skip_reason = models.CharField(max_length=300, blank=True)
    # The id the item form carried when it was answered: a repeated POST of the same form stores no second answer.
    submission_id = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            # never the same annotator twice on one task
            models.UniqueConstraint(fields=["task", "annotator"], name="one_assignment_per_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "status"])]


class GoldItem(models.Model):
    """A sample whose answer a lead knows. Gold tasks are mixed into every annotator's queue at the project's
    gold rate; an annotator's accuracy on gold is the share of their gold answers that match `label`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_items")
    sample = models.OneToOneField(Sample, on_delete=models.CASCADE, related_name="gold_item")
    label = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"gold {self.label} for sample {self.sample_id}"


class ReviewSettings(models.Model):
    """Per-project settings of the review queue that the core Project does not carry."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="review_settings")
    gold_rate = models.FloatField(
        default=0.1, help_text="Share of an annotator's items that are gold checks (0 turns gold off)."
    )

    def __str__(self) -> str:
        return f"review settings of {self.project}"


class SampleTextVersion(models.Model):
    """A reviewer's correction of a sample's text. Sample.text stays the original (what was generated or
    imported, what the LLM labelled); corrections are kept here as numbered versions, newest last."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="text_versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    annotation = models.ForeignKey(
        HumanAnnotation, on_delete=models.SET_NULL, null=True, blank=True, related_name="text_versions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "version"], name="unique_sample_text_version")]
        ordering = ["sample", "version"]

    def __str__(self) -> str:
        return f"sample {self.sample_id} text v{self.version}"
