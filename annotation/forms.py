"""Forms of labelling and routing."""

from __future__ import annotations

from django import forms

from annotation.models import BudgetKind, RoutingPolicy
from generation.models import LLMEndpoint
from generation.services.endpoints import endpoint_default_for
from synthstudio.models import LabelMethod, Project

LLM_METHODS = [
    (LabelMethod.LOGPROBS, "Token logprobs (one call, the endpoint must return logprobs)"),
    (LabelMethod.SELF_CONSISTENCY, "Self-consistency (n answers at temperature > 0)"),
    (LabelMethod.PROMPT_VARIANTS, "Prompt variants (CoAnnotating: one call per paraphrased prompt)"),
    (LabelMethod.VERBALISED, "Verbalised confidence (JSON label + confidence)"),
]


class LabellingRunForm(forms.Form):
    endpoint = forms.ModelChoiceField(
        queryset=LLMEndpoint.objects.none(),
        required=False,
        empty_label="offline — embedding zero-shot (no LLM)",
        help_text="Without an endpoint the offline labeller is used and its labels are marked offline.",
    )
    method = forms.ChoiceField(choices=LLM_METHODS, initial=LabelMethod.LOGPROBS)
    samples_per_item = forms.IntegerField(
        min_value=2,
        max_value=20,
        initial=5,
        help_text="Answers (self-consistency) or prompts (variants) per item.",
    )
    temperature = forms.FloatField(
        min_value=0.0, max_value=2.0, initial=0.7, help_text="Self-consistency only."
    )
    demo_count = forms.IntegerField(
        min_value=0, max_value=20, initial=0, help_text="Most similar human-verified items shown as examples."
    )
    only_unlabelled = forms.BooleanField(
        required=False, initial=True, label="Only samples without an LLM label"
    )

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].queryset = LLMEndpoint.objects.usable_in(project)
        if not self.is_bound:  # the project's endpoint when it has one; offline only without any
            self.fields["endpoint"].initial = endpoint_default_for(project=project)

    def clean(self) -> dict:
        data = super().clean()
        endpoint = data.get("endpoint")
        if endpoint and data.get("method") == LabelMethod.LOGPROBS and not endpoint.supports_logprobs:
            self.add_error(
                "method", "This endpoint returns no logprobs: use self-consistency or prompt variants."
            )
        if (
            data.get("method") == LabelMethod.SELF_CONSISTENCY
            and data.get("endpoint")
            and not data.get("temperature")
        ):
            self.add_error(
                "temperature", "Self-consistency needs a temperature above 0: n answers at 0 agree."
            )
        return data


class RoutingPolicyForm(forms.ModelForm):
    class Meta:
        model = RoutingPolicy
        fields = [
            "budget_kind",
            "budget_count",
            "budget_share",
            "strategy",
            "batch_size",
            "annotators_per_item",
            "cold_start_size",
            "cold_start_strategy",
            "is_active",
        ]

    def clean_budget_share(self) -> float:
        share = self.cleaned_data["budget_share"]
        if not 0.0 <= share <= 1.0:
            raise forms.ValidationError("A share is between 0 and 1 (0.2 = a fifth of the items).")
        return share

    def clean_batch_size(self) -> int:
        size = self.cleaned_data["batch_size"]
        if size < 1:
            raise forms.ValidationError("Route at least one item per batch.")
        return size

    def clean_annotators_per_item(self) -> int:
        count = self.cleaned_data["annotators_per_item"]
        if count < 1:
            raise forms.ValidationError("Every routed item needs at least one annotator.")
        return count

    def clean(self) -> dict:
        data = super().clean()
        if data.get("budget_kind") == BudgetKind.COUNT and data.get("budget_count") == 0:
            self.add_error("budget_count", "A budget of 0 items routes nothing.")
        return data
