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

    class Meta:
        constraints = [
            # never the same annotator twice on one task
            models.UniqueConstraint(fields=["task", "annotator"], name="one_assignment_per_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "status"])]
