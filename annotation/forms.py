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


QUALITY_TARGET_FIELDS = ("target_error", "target_confidence", "calibration_size", "certify_score")


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
            "audit_share",
            "is_active",
            *QUALITY_TARGET_FIELDS,
        ]
        help_texts = {
            "strategy": "“Sample for estimation” makes each batch a random draw, likelier where the LLM is unsure, "
            "with recorded probabilities: for unbiased estimates rather than for catching errors.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # a form posted without the field (an older page, a script) keeps the policy's audit share
        self.fields["audit_share"].required = False
        for name in QUALITY_TARGET_FIELDS:  # likewise the quality target's settings
            self.fields[name].required = False

    @property
    def general_fields(self) -> list:
        return [field for field in self if field.name not in QUALITY_TARGET_FIELDS]

    @property
    def quality_target_fields(self) -> list:
        """Shown in their own fieldset: only the quality-target strategy reads them."""
        return [field for field in self if field.name in QUALITY_TARGET_FIELDS]

    def _kept_when_missing(self, name: str):
        value = self.cleaned_data.get(name)
        return getattr(self.instance, name) if value in (None, "") else value

    def clean_certify_score(self) -> str:
        return self._kept_when_missing("certify_score")

    def clean_target_error(self) -> float:
        value = self._kept_when_missing("target_error")
        if not 0.0 < value < 1.0:
            raise forms.ValidationError("A target error is a share above 0 and below 1 (0.05 = 5 %).")
        return value

    def clean_target_confidence(self) -> float:
        value = self._kept_when_missing("target_confidence")
        if not 0.5 <= value < 1.0:
            raise forms.ValidationError("A confidence is at least 0.5 and below 1 (0.95 = 95 %).")
        return value

    def clean_calibration_size(self) -> int:
        value = self._kept_when_missing("calibration_size")
        if value < 10:
            raise forms.ValidationError("Draw at least 10 calibration items (a few hundred certify more).")
        return value

    def clean_audit_share(self) -> float:
        share = self.cleaned_data.get("audit_share")
        if share is None:
            return self.instance.audit_share
        if not 0.0 <= share <= 0.5:
            raise forms.ValidationError("An audit share is between 0 (off) and 0.5 (half of each batch).")
        return share

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
