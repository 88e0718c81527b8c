"""Models of the generation app: LLM endpoints and the call cache (shared with annotation), versioned
generation configs, runs with their per-request items, and LLM-proposed condition values awaiting review."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import models
from django.db.models import Q

from generation.endpoint_keys import (
    UNREADABLE_MESSAGE,
    EncryptedKeyField,
    KeyUnavailable,
    UnreadableKey,
    key_variable_problem,
)
from synthstudio.models import BackgroundJob, Codebook, Project, Sample


class LLMEndpointQuerySet(models.QuerySet):
    def usable_in(self, project: Project) -> LLMEndpointQuerySet:
        """The project's own endpoints and the global ones (project null)."""
        return self.filter(Q(project=project) | Q(project__isnull=True))


class LLMEndpoint(models.Model):
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp …). The API key comes from an
    environment variable named in `api_key_env` (only names the operator allowed: generation.endpoint_keys),
    or is entered once and stored encrypted; it is never shown again. The endpoint made from LLM_BASE_URL /
    LLM_API_KEY (`from_environment`) is the operator's, and the only one that uses LLM_API_KEY."""

    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="llm_endpoints",
        help_text="Empty: usable by every project.",
    )
    name = models.CharField(max_length=100)
    base_url = models.URLField(
        max_length=300, help_text="e.g. https://api.openai.com/v1 or http://localhost:8001/v1"
    )
    model = models.CharField(max_length=200)
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of an environment variable holding the API key."
    )
    stored_api_key = EncryptedKeyField(
        blank=True, editable=False, help_text="Encrypted at rest (Fernet, from SECRET_KEY)."
    )
    from_environment = models.BooleanField(
        default=False, editable=False, help_text="Made from LLM_BASE_URL / LLM_API_KEY by the operator."
    )
    max_concurrency = models.PositiveIntegerField(default=8)
    rpm = models.PositiveIntegerField(default=0, help_text="Requests per minute; 0 = no limit.")
    tpm = models.PositiveIntegerField(default=0, help_text="Tokens per minute; 0 = no limit.")
    price_input_per_1k = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    price_output_per_1k = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    timeout_seconds = models.FloatField(default=60.0)
    max_retries = models.PositiveIntegerField(default=4)
    supports_response_format = models.BooleanField(default=True)
    supports_logprobs = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LLMEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"

    def __repr__(self) -> str:  # never the key
        return f"<LLMEndpoint {self.pk} {self.name!r} {self.base_url} {self.model}>"

    def key_problem(self) -> str:
        """'' when the endpoint's key can be used, else why not. A variable the operator did not allow is
        refused here too (not only in the form), so rows saved before the rule cannot leak it."""
        if self.from_environment:
            return ""
        if self.api_key_env:
            problem = key_variable_problem(self.api_key_env)
            if problem:
                return problem
            if os.environ.get(self.api_key_env):
                return ""
        if isinstance(self.stored_api_key, UnreadableKey):
            return UNREADABLE_MESSAGE
        return ""

    @property
    def has_api_key(self) -> bool:
        if self.key_problem():
            return False
        if self.from_environment:
            return bool(settings.LLM_API_KEY)
        return bool(self.stored_api_key or (self.api_key_env and os.environ.get(self.api_key_env)))

    @property
    def key_status(self) -> str:
        """Where the key comes from, for the endpoint pages (never the key)."""
        problem = self.key_problem()
        if problem:
            return problem
        if self.from_environment:
            return "from $LLM_API_KEY (set by the operator)" if settings.LLM_API_KEY else "none"
        if self.api_key_env and os.environ.get(self.api_key_env):
            return f"from ${self.api_key_env}"
        if self.stored_api_key:
            return "stored (hidden)"
        return f"none (${self.api_key_env} is not set)" if self.api_key_env else "none"

    def resolved_api_key(self) -> str:
        """The key to send; raises KeyUnavailable rather than send a forbidden variable or garbage."""
        problem = self.key_problem()
        if problem:
            raise KeyUnavailable(problem)
        # Local servers (vLLM, Ollama, llama.cpp) accept any key; the openai client insists on one.
        if self.from_environment:
            return settings.LLM_API_KEY or "no-key"
        if self.api_key_env and os.environ.get(self.api_key_env):
            return os.environ[self.api_key_env]
        return self.stored_api_key or "no-key"


class LLMCall(models.Model):
    """The cache of LLM calls: one row per distinct (base_url, model, messages, params), with the response."""

    key = models.CharField(max_length=64, unique=True)
    endpoint = models.ForeignKey(
        LLMEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    base_url = models.CharField(max_length=300)
    model = models.CharField(max_length=200)
    request = models.JSONField(help_text="{messages, params}")
    response = models.JSONField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"LLM call {self.key[:10]} ({self.model})"


class SamplingMode(models.TextChoices):
    ALL = "all", "All combinations"
    BALANCED = "balanced", "Balanced random, without replacement"


class DemoStrategy(models.TextChoices):
    NONE = "none", "No demos"
    RANDOM = "random", "Random"
    SIMILAR = "similar", "Most similar to the conditions (embeddings)"
    KMEANS = "kmeans", "Most diverse (k-means medoids)"
    VOTEK = "votek", "Representative and diverse (vote-k)"


class GenerationKind(models.TextChoices):
    SINGLE = "single", "One step: text and label"
    INPUT_THEN_LABEL = "input_then_label", "Two steps: input, then its label"
    INSTRUCTION_THEN_RESPONSE = "instruction_then_response", "Two steps: instruction, then response"
    DIALOGUE = "dialogue", "Dialogue of k turns (user/assistant)"


class GenerationConfig(models.Model):
    """One version of a named generation config. Edits create a new version; runs point at the version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_configs")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    codebook = models.ForeignKey(Codebook, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(
        LLMEndpoint,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the offline generator (no network).",
    )
    kind = models.CharField(max_length=40, choices=GenerationKind.choices, default=GenerationKind.SINGLE)
    dialogue_turns = models.PositiveIntegerField(default=4)
    role_preamble = models.TextField(blank=True)
    template = models.TextField()
    json_schema = models.JSONField(default=dict, blank=True)
    dimensions = models.JSONField(default=list, blank=True, help_text="[{name, values: [...]}]")
    condition_on_label = models.BooleanField(default=True)
    label_balance = models.JSONField(default=dict, blank=True, help_text="{label: weight}; empty = equal.")
    sampling_mode = models.CharField(
        max_length=20, choices=SamplingMode.choices, default=SamplingMode.BALANCED
    )
    random_words = models.PositiveIntegerField(default=0)
    demo_count = models.PositiveIntegerField(default=0)
    demo_strategy = models.CharField(max_length=20, choices=DemoStrategy.choices, default=DemoStrategy.NONE)
    temperature = models.FloatField(default=1.0)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(default=256)
    n = models.PositiveIntegerField(default=1)
    seed = models.IntegerField(default=0)
    target_count = models.PositiveIntegerField(default=20)
    rounds = models.PositiveIntegerField(default=1)
    rounds_target_corrected_share = models.FloatField(
        default=0.0,
        help_text="Automatic rounds stop once a round's human-corrected share is below this (0: no target).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="unique_generation_config_version"
            )
        ]
        ordering = ["project", "name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_offline(self) -> bool:
        return self.endpoint_id is None


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RoundState(models.TextChoices):
    """Where a run of an automatic-rounds loop stands (generation.services.rounds_loop); empty: not in a loop."""

    GENERATING = "generating", "Generating"
    LABELLING = "labelling", "LLM labelling"
    AWAITING_ANSWERS = "awaiting_answers", "Waiting for human answers"
    CONTINUED = "continued", "Next round started"
    STOPPED = "stopped", "Stopped"


class GenerationRun(BackgroundJob):
    config = models.ForeignKey(GenerationConfig, on_delete=models.PROTECT, related_name="runs")
    endpoint = models.ForeignKey(
        LLMEndpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model_name = models.CharField(
        max_length=200, blank=True, help_text="'offline-markov' for the offline generator."
    )
    round_number = models.PositiveIntegerField(default=1)
    previous_round = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    condition_weights = models.JSONField(default=dict, blank=True, help_text="{dimension: {value: weight}}")
    cached = models.PositiveIntegerField(default=0)
    garbage = models.PositiveIntegerField(default=0, help_text="Answers that came back but did not parse.")
    samples_created = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    lease = models.CharField(max_length=64, blank=True, help_text="Which task execution owns the run.")
    shard_count = models.PositiveIntegerField(
        default=1,
        help_text="Shards of the run's items, executed by that many workers at once (1: not sharded).",
    )
    round_state = models.CharField(max_length=20, choices=RoundState.choices, blank=True, db_index=True)
    round_labelling_run_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The annotation.LabellingRun that labelled this round's samples."
    )
    round_stop_reason = models.TextField(blank=True)
    round_report = models.JSONField(
        default=dict, blank=True, help_text="The finished round's figures (generation.services.rounds_loop)."
    )

    @property
    def is_sharded(self) -> bool:
        return self.shard_count > 1

    @property
    def is_offline(self) -> bool:
        return self.endpoint_id is None

    @property
    def run_ref(self) -> str:
        return f"generation:{self.pk}"


class GenerationItem(models.Model):
    """One planned request of a run (one prompt; its n choices may become several samples). Results are
    committed as they arrive, so a resumed run skips what is done."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    conditions = models.JSONField(default=dict)
    demos = models.JSONField(default=list, help_text="[{sample_id, text, label}]")
    random_words = models.JSONField(default=list)
    messages = models.JSONField(default=list, help_text="The first step's messages, exactly as sent.")
    steps = models.JSONField(
        default=list, help_text="Per finished step: {messages, outputs, tokens, cached}."
    )
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    parse_status = models.CharField(max_length=20, blank=True, help_text="'ok' or the error kind.")
    error = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    parsed = models.JSONField(default=list, blank=True)
    label = models.CharField(max_length=100, blank=True)
    cached = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    samples = models.ManyToManyField(Sample, blank=True, related_name="generation_items")
    finished_at = models.DateTimeField(null=True, blank=True)
    shard = models.PositiveIntegerField(default=0, help_text="Which shard of a sharded run sends it.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="one_item_per_run_index")]
        indexes = [models.Index(fields=["run", "status"]), models.Index(fields=["run", "shard", "status"])]
        ordering = ["run", "index"]

    def __str__(self) -> str:
        return f"item {self.index} of run {self.run_id}"


class GenerationShard(BackgroundJob):
    """One shard of a sharded run: the items whose `shard` is `number`, sent by one worker at a time under
    its own lease (run_job's `lease_holder`, and `lease` for the execution), with its share of the
    endpoint's concurrency and RPM/TPM limits. Several shards of a run are sent by different workers at once;
    the run's counters are the sums of its shards' (generation.services.shards)."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="shards")
    number = models.PositiveIntegerField()
    lease = models.CharField(max_length=64, blank=True, help_text="Which task execution owns the shard.")
    cached = models.PositiveIntegerField(default=0)
    garbage = models.PositiveIntegerField(default=0)
    samples_created = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_shard_per_run_number")]
        ordering = ["run", "number"]

    def __str__(self) -> str:
        return f"shard {self.number + 1} of run {self.run_id}"


class EndpointRateLimit(models.Model):
    """An endpoint's RPM/TPM budget shared by every worker that sends to it (all shards, all runs): the
    blocks of requests and tokens taken in the last window, each [taken at (Unix seconds), requests,
    tokens]. Updated by compare-and-set on `version` (generation.rate_limit)."""

    endpoint = models.OneToOneField(
        LLMEndpoint, on_delete=models.CASCADE, primary_key=True, related_name="rate_limit"
    )
    blocks = models.JSONField(default=list)
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"rate limit of endpoint {self.endpoint_id}"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for review"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class ConditionValueProposal(models.Model):
    """A value for a condition dimension proposed by the LLM (generate-then-expand); used only once a lead
    accepts it, which writes a new config version."""

    config = models.ForeignKey(GenerationConfig, on_delete=models.CASCADE, related_name="proposals")
    dimension = models.CharField(max_length=100)
    value = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    source = models.CharField(max_length=200, blank=True, help_text="Model name, or 'offline'.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dimension", "id"]
