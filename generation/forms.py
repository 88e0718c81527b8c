"""Forms of the generation app: endpoints (the API key is write-only), generation configs, runs and rounds,
and the requests and decisions on LLM-proposed condition values."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from generation import prompts
from generation.endpoint_keys import allowed_key_variables, key_variable_problem
from generation.llm.outbound import REFUSED_HINT, REFUSED_PRIVATE, refusal_for
from generation.models import DemoStrategy, GenerationConfig, GenerationKind, LLMEndpoint, SamplingMode
from generation.services.configs import config_problems, config_values
from generation.services.endpoints import endpoint_default_for
from synthstudio.models import Project


class EndpointForm(forms.ModelForm):
    """Key variables must be ones the operator allowed, the base URL must not resolve to a refused address,
    and a stored key does not follow a changed base URL or model (it was typed for the old server): it is
    dropped unless a new key comes with the change. `key_dropped` tells the view to say so."""

    api_key = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored and never shown again. Leave empty to keep the current key, or use an environment variable.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = LLMEndpoint
        fields = [
            "name",
            "base_url",
            "model",
            "api_key_env",
            "max_concurrency",
            "rpm",
            "tpm",
            "price_input_per_1k",
            "price_output_per_1k",
            "timeout_seconds",
            "max_retries",
            "supports_response_format",
            "supports_logprobs",
        ]

    key_dropped = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "api_key_env"
        ].help_text = f"Name of an environment variable holding the key. {allowed_key_variables()}"

    def clean_api_key_env(self) -> str:
        name = self.cleaned_data["api_key_env"].strip()
        if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise forms.ValidationError(
                "Name an environment variable, e.g. SYNTHSTUDIO_KEY_OPENAI (not the key itself)."
            )
        problem = key_variable_problem(name) if name else ""
        if problem:
            raise forms.ValidationError(problem)
        return name

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        refusal = refusal_for(url)
        if refusal == REFUSED_PRIVATE:
            raise forms.ValidationError(f"{REFUSED_PRIVATE} {REFUSED_HINT}")
        if refusal:
            raise forms.ValidationError(refusal)
        return url

    def clean_max_concurrency(self) -> int:
        value = self.cleaned_data["max_concurrency"]
        if value < 1:
            raise forms.ValidationError("At least 1.")
        return value

    def save(self, commit: bool = True) -> LLMEndpoint:
        endpoint = super().save(commit=False)
        moved = self.instance.pk is not None and ({"base_url", "model"} & set(self.changed_data))
        if moved and endpoint.stored_api_key and not self.cleaned_data.get("api_key"):
            endpoint.stored_api_key = ""
            self.key_dropped = True
        if self.cleaned_data.get("clear_api_key"):
            endpoint.stored_api_key = ""
        if self.cleaned_data.get("api_key"):
            endpoint.stored_api_key = self.cleaned_data["api_key"].strip()
        if commit:
            endpoint.save()
        return endpoint


def parse_dimensions(text: str) -> list[dict]:
    """'topic: plot, acting, music' per line → [{name, values}]."""
    dimensions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, values = line.partition(":")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise forms.ValidationError(
                f"Line {number}: write 'name: value, value, …' with a plain name (letters, digits, _)."
            )
        pool = [v.strip() for v in values.split(",") if v.strip()]
        if not pool:
            raise forms.ValidationError(f"Line {number}: the dimension {name!r} has no values.")
        dimensions.append({"name": name, "values": list(dict.fromkeys(pool))})
    return dimensions


def format_dimensions(dimensions: list[dict]) -> str:
    return "\n".join(f"{d['name']}: {', '.join(d.get('values', []))}" for d in dimensions or [])


def parse_label_balance(text: str, labels: list[str]) -> dict[str, float]:
    balance: dict[str, float] = {}
    for part in re.split(r"[,\n]", text):
        if not part.strip():
            continue
        name, sep, weight = part.partition(":")
        name = name.strip()
        if name not in labels:
            raise forms.ValidationError(f"{name!r} is not a label of the codebook ({', '.join(labels)}).")
        try:
            balance[name] = float(weight) if sep else 1.0
        except ValueError:
            raise forms.ValidationError(f"The weight of {name!r} must be a number.") from None
        if balance[name] < 0:
            raise forms.ValidationError(f"The weight of {name!r} cannot be negative.")
    return balance


class GenerationConfigForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")
    endpoint = forms.ModelChoiceField(
        queryset=LLMEndpoint.objects.none(),
        required=False,
        empty_label="Offline generator (no network)",
    )
    kind = forms.ChoiceField(choices=GenerationKind.choices, initial=GenerationKind.SINGLE)
    dialogue_turns = forms.IntegerField(min_value=2, max_value=20, initial=4)
    role_preamble = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        initial="Suppose you write realistic examples for the task below, as the people in it would.",
        label="Role",
    )
    template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}),
        initial=prompts.DEFAULT_TEMPLATE,
        help_text="Placeholders: "
        + ", ".join("{{ " + name + " }}" for name in prompts.BUILTIN_PLACEHOLDERS)
        + " and {{ <dimension> }} for each dimension.",
    )
    json_schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        label="JSON schema",
        help_text="Empty: the default for the kind (e.g. {text, label} with the codebook's labels).",
    )
    dimensions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Condition dimensions",
        help_text="One per line: name: value, value, … (e.g. topic: plot, acting, music).",
    )
    condition_on_label = forms.BooleanField(required=False, initial=True, label="Condition on the label")
    label_balance = forms.CharField(required=False, help_text="e.g. positive: 1, negative: 2. Empty: equal.")
    sampling_mode = forms.ChoiceField(choices=SamplingMode.choices, initial=SamplingMode.BALANCED)
    random_words = forms.IntegerField(
        min_value=0, max_value=20, initial=0, help_text="Random words injected per sample."
    )
    demo_count = forms.IntegerField(min_value=0, max_value=20, initial=0, label="Demos per prompt")
    demo_strategy = forms.ChoiceField(choices=DemoStrategy.choices, initial=DemoStrategy.NONE)
    temperature = forms.FloatField(min_value=0, max_value=2, initial=1.0)
    top_p = forms.FloatField(min_value=0, max_value=1, initial=1.0)
    max_tokens = forms.IntegerField(min_value=1, max_value=32000, initial=256)
    n = forms.IntegerField(
        min_value=1, max_value=16, initial=1, help_text="Choices per request (one-step kind)."
    )
    seed = forms.IntegerField(initial=0)
    target_count = forms.IntegerField(min_value=1, max_value=100000, initial=20, label="Requests per run")
    rounds = forms.IntegerField(min_value=1, max_value=20, initial=1)
    rounds_target_corrected_share = forms.FloatField(
        required=False,  # empty (or a form posted without it): no target
        min_value=0,
        max_value=1,
        initial=0.0,
        label="Stop rounds below this corrected share",
        help_text="With more than one round: the automatic rounds stop early once the share of a round's "
        "reviewed samples that humans corrected falls below this (e.g. 0.05 for 5 %). 0: no target, run "
        "every round (they still stop when a round adds no new correct sample).",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["endpoint"].queryset = LLMEndpoint.objects.usable_in(project)
        if not self.is_bound and "endpoint" not in self.initial:  # a new config: the project's endpoint
            self.fields["endpoint"].initial = endpoint_default_for(project=project)
        codebook = project.codebook
        self.label_names = codebook.label_names if codebook else []

    def clean_json_schema(self) -> dict:
        raw = self.cleaned_data["json_schema"].strip()
        if not raw:
            return {}
        try:
            schema = json.loads(raw)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error.msg} (line {error.lineno}).") from None
        if not isinstance(schema, dict):
            raise forms.ValidationError("The schema must be a JSON object.")
        return schema

    def clean_rounds_target_corrected_share(self) -> float:
        return self.cleaned_data["rounds_target_corrected_share"] or 0.0

    def clean_dimensions(self) -> list[dict]:
        return parse_dimensions(self.cleaned_data["dimensions"])

    def clean_label_balance(self) -> dict:
        return parse_label_balance(self.cleaned_data["label_balance"], self.label_names)

    def clean(self) -> dict:
        data = super().clean()
        if {"template", "dimensions", "json_schema"} <= set(data):
            for problem in config_problems(
                template=data["template"], dimensions=data["dimensions"], json_schema=data["json_schema"]
            ):
                field = (
                    "template"
                    if "placeholder" in problem or "Template" in problem
                    else ("json_schema" if "dimension" not in problem.lower() else "dimensions")
                )
                self.add_error(field, problem)
        if data.get("demo_strategy") != DemoStrategy.NONE and not data.get("demo_count"):
            self.add_error("demo_count", "Choose how many demos, or the strategy 'No demos'.")
        return data

    def config_values(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("name")
        return data

    @classmethod
    def initial_from(cls, config) -> dict:
        values = config_values(config)
        values["name"] = config.name
        values["dimensions"] = format_dimensions(config.dimensions)
        values["json_schema"] = json.dumps(config.json_schema, indent=2) if config.json_schema else ""
        values["label_balance"] = ", ".join(f"{k}: {v:g}" for k, v in (config.label_balance or {}).items())
        values["endpoint"] = config.endpoint_id
        return values


class RunStartForm(forms.Form):
    count = forms.IntegerField(
        min_value=1, max_value=100000, required=False, label="Requests (empty: the config's)"
    )
    shards = forms.IntegerField(
        min_value=1,
        max_value=64,
        initial=1,
        required=False,  # a form posted without it: one worker
        label="Spread over N workers",
        help_text="Each worker sends 1/N of the items with 1/N of the endpoint's concurrency; the endpoint's "
        "RPM/TPM limits hold for all of them together (one shared budget). At most the endpoint's "
        "concurrency; offline runs use one worker.",
    )

    def clean_shards(self) -> int:
        return self.cleaned_data["shards"] or 1


class NextRoundForm(forms.Form):
    strength = forms.FloatField(
        min_value=0,
        max_value=5,
        initial=1.0,
        help_text="How strongly weights move toward weak values (0 = keep weights).",
    )


class ProposalsRequestForm(forms.Form):
    """The dimension of the config whose value pool the LLM should expand."""

    dimension = forms.ChoiceField(
        error_messages={
            "required": "Choose a dimension.",
            "invalid_choice": "The config has no dimension %(value)r.",
        }
    )

    def __init__(self, *args: Any, config: GenerationConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dimension"].choices = [(d["name"], d["name"]) for d in config.dimensions or []]


class ProposalDecideForm(forms.Form):
    """The button a lead pressed on a proposed value: anything but a valid "accept" rejects it."""

    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])

    def accepted(self) -> bool:
        return self.is_valid() and self.cleaned_data["decision"] == "accept"
