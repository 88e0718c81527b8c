"""Models of the evaluation app, by feature: pairwise preferences and LLM-as-judge runs (PairwiseRater,
PairwiseItem, PairwiseJudgment, JudgeRun, JudgeRating), the downstream benchmark (BenchmarkRun), the dashboards'
cached numbers (MetricsCache, MetricsRefresh), curation (CurationSettings, RefinementRun, Snapshot, SnapshotItem,
SnapshotJob), import and export (LabelStudioImportJob, ExportJob) and the API (ApiToken)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from synthstudio.models import BackgroundJob, Codebook, Project, Sample


class RaterKind(models.TextChoices):
    HUMAN = "human", "Project member"
    IMPORTED = "imported", "Imported annotator"
    LLM = "llm", "LLM judge"


class PairwiseRater(models.Model):
    """Who judged pairs: a project member, a pseudo-annotator from an imported file (no login), or an LLM
    judge run."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairwise_raters")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=RaterKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_pairwise_rater_name")]
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name


class PairwiseItem(models.Model):
    """Two responses to the same prompt, e.g. from two models or two generation configs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairwise_items")
    prompt = models.TextField()
    response_a = models.TextField()
    response_b = models.TextField()
    source_a = models.CharField(max_length=200, help_text="Model or config that wrote response A.")
    source_b = models.CharField(max_length=200, help_text="Model or config that wrote response B.")
    external_id = models.CharField(max_length=100, blank=True, help_text="Id in the imported file.")
    batch = models.CharField(max_length=300, blank=True, help_text="Import file name or origin.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source_a} vs {self.source_b}: {self.prompt[:40]}"


class PairChoice(models.TextChoices):
    A = "a", "A better"
    B = "b", "B better"
    TIE = "tie", "Tie"


class PairwiseJudgment(models.Model):
    """One rater's choice on a pair. `choice` always refers to the item's response_a/response_b, whatever
    the position it was shown in; `a_shown_first` records that position (for position-bias analysis)."""

    item = models.ForeignKey(PairwiseItem, on_delete=models.CASCADE, related_name="judgments")
    rater = models.ForeignKey(PairwiseRater, on_delete=models.CASCADE, related_name="judgments")
    choice = models.CharField(max_length=3, choices=PairChoice.choices)
    a_shown_first = models.BooleanField(default=True)
    judge_run = models.ForeignKey(
        "JudgeRun", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    raw_output = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "rater", "a_shown_first"], name="one_judgment_per_position"
            )
        ]
        ordering = ["id"]


class JudgeKind(models.TextChoices):
    RATING = "rating", "Quality ratings (A–D) of samples"
    PAIRWISE = "pairwise", "Pairwise preferences (both orders)"


class JudgeRun(BackgroundJob):
    """An LLM-as-judge run, or an offline one (is_offline: the heuristic judge, no LLM). Rating runs write
    JudgeRating rows; pairwise runs write PairwiseJudgment rows (each pair judged twice, positions swapped).
    `summary` holds agreement with humans and position bias."""

    kind = models.CharField(max_length=20, choices=JudgeKind.choices)
    endpoint = models.ForeignKey(
        "generation.LLMEndpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the environment's default endpoint (LLM_BASE_URL).",
    )
    base_url = models.CharField(max_length=500, blank=True)
    model_name = models.CharField(max_length=200)
    is_offline = models.BooleanField(
        default=False,
        help_text="Judged by the offline heuristic judge (evaluation.offline_judge), not an LLM.",
    )
    limit = models.PositiveIntegerField(default=200, help_text="Judge at most this many samples or pairs.")
    summary = models.JSONField(default=dict, blank=True)


class JudgeRating(models.Model):
    run = models.ForeignKey(JudgeRun, on_delete=models.CASCADE, related_name="ratings")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    rating = models.CharField(max_length=1, blank=True, help_text="A–D, empty when the reply named none.")
    raw_output = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "sample"], name="one_judge_rating_per_sample")]


class BenchmarkRun(BackgroundJob):
    """Downstream benchmark: classifiers trained on several training sets, tested on one human-labelled
    held-out set. `results` is a list of {training_set, model, n_train, n_test, accuracy, macro_f1}."""

    test_source = models.CharField(max_length=20, default="split", help_text="'split' or 'file'.")
    test_fraction = models.FloatField(default=0.3)
    seed = models.PositiveIntegerField(default=0)
    test_file_name = models.CharField(max_length=300, blank=True)
    test_rows = models.JSONField(default=list, blank=True, help_text="Imported test set: [{text, label}].")
    results = models.JSONField(default=list, blank=True)


class MetricsCache(models.Model):
    """The dashboard numbers of a project, computed in a worker, valid for one data version."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="metrics_cache")
    data_version = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)
    seconds = models.FloatField(default=0.0)


class MetricsRefresh(BackgroundJob):
    """A worker job recomputing MetricsCache for a data version."""

    data_version = models.CharField(max_length=64)


class SampleWeighting(models.TextChoices):
    """Where the per-sample `weight` of a snapshot comes from (evaluation.curation.weights)."""

    RULE = "rule", "Rule: human agreement share, else the LLM's confidence"
    LEARNED = "learned", "Learned: held-out loss against the human-verified items"


class CurationSettings(models.Model):
    """A project's current curation filter settings (see evaluation.curation.filters.FilterSettings)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="curation_settings")
    filters = models.JSONField(default=dict, blank=True)
    sample_weights = models.CharField(
        max_length=20,
        choices=SampleWeighting.choices,
        default=SampleWeighting.RULE,
        help_text="How snapshots (and so their exports) weight each sample.",
    )
    updated_at = models.DateTimeField(auto_now=True)


class RefinementRun(BackgroundJob):
    """A student-model pass: FreeAL clean/noisy split and the ranked label issues, stored as JSON."""

    result = models.JSONField(default=dict, blank=True)


class SnapshotQuerySet(models.QuerySet):
    def ready(self) -> SnapshotQuerySet:
        """Snapshots whose rows are all written; a worker building one keeps it hidden until then."""
        return self.filter(is_ready=True)


class Snapshot(models.Model):
    """An immutable curated dataset version: its rows are copied into SnapshotItem, never recomputed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    filter_settings = models.JSONField(default=dict)
    label_policy = models.CharField(max_length=200)
    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    codebook_version = models.PositiveIntegerField(null=True, blank=True)
    label_names = models.JSONField(default=list)
    split_fractions = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"train": 0.8, ...}; {} = no split.'
    )
    item_count = models.PositiveIntegerField(default=0)
    label_counts = models.JSONField(default=dict)
    removed_counts = models.JSONField(default=dict, help_text="How many items each filter removed.")
    licence = models.CharField(max_length=100, default="unknown", help_text="SPDX id for the dataset card.")
    stats = models.JSONField(
        default=dict, blank=True, help_text="Agreement and provenance counts at creation."
    )
    is_ready = models.BooleanField(
        default=True,
        help_text="False while a worker writes its rows; such a snapshot is never listed or exported.",
    )
    certificate = models.JSONField(
        default=dict,
        blank=True,
        help_text="The project's label certificate when the snapshot was made, with 'stale' true when the "
        "snapshot's labels are not the ones it certified; {} without one.",
    )

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="unique_snapshot_version")]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project} snapshot v{self.version}"


class SnapshotItem(models.Model):
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="items")
    sample = models.ForeignKey(Sample, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sample_ref = models.BigIntegerField(help_text="The sample's id when the snapshot was made.")
    text = models.TextField(
        help_text="The sample's current text: a lead-accepted correction, else the original."
    )
    original_text = models.TextField(
        null=True, blank=True, help_text="The text before an accepted correction; null when uncorrected."
    )
    fields = models.JSONField(default=dict, blank=True)
    label = models.CharField(max_length=100)
    label_source = models.CharField(max_length=20)
    weight = models.FloatField()
    split = models.CharField(max_length=20, default="train")
    llm_label = models.CharField(max_length=100, blank=True)
    llm_confidence = models.FloatField(null=True, blank=True)
    origin = models.CharField(max_length=20, blank=True)
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["snapshot", "id"]


class SnapshotJob(BackgroundJob):
    """A worker building a snapshot from the filter settings chosen on the curation page. The snapshot row is
    reserved (hidden, is_ready=False) when the build starts and shown only once every item is written; a build
    re-run after a crash empties that row and writes it again."""

    snapshot = models.OneToOneField(
        Snapshot, on_delete=models.SET_NULL, null=True, blank=True, related_name="build_job"
    )
    filter_settings = models.JSONField(default=dict)
    split_fractions = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)
    licence = models.CharField(max_length=100, default="unknown")
    seed = models.PositiveIntegerField(default=0)


class LabelStudioImportJob(BackgroundJob):
    """A Label Studio JSON upload imported by a worker, all or nothing; `counts` holds what was imported."""

    original_name = models.CharField(max_length=300)
    stored_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    bad_task = models.PositiveIntegerField(
        null=True, blank=True, help_text="1-based position of the refused task."
    )


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
    HF = "hf", "Hugging Face datasets (zip)"
    LABEL_STUDIO = "labelstudio", "Label Studio JSON"


class ExportJob(BackgroundJob):
    """A snapshot written to a file by a worker (large snapshots); the file is kept: snapshots never change."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="exports")
    file_format = models.CharField(max_length=20, choices=ExportFormat.choices)
    file_path = models.CharField(max_length=500, blank=True)


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A per-user API token; only its SHA-256 is stored, the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
