"""Forms of the review queue (the answer form is validated again by annotation.review services)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from annotation.models import LabelAggregation
from annotation.review.history import ANSWERED, HistoryFilter
from synthstudio.models import FlagReason, QualityRating


class ReviewAnswerForm(forms.Form):
    label = forms.CharField(max_length=100)
    rating = forms.ChoiceField(choices=[("", "—"), *QualityRating.choices], required=False)
    flag = forms.ChoiceField(choices=FlagReason.choices, required=False)
    flag_note = forms.CharField(required=False, max_length=2000)
    comment = forms.CharField(required=False, max_length=5000)
    edited_text = forms.CharField(required=False, max_length=100_000, strip=False)
    seconds_spent = forms.FloatField(required=False, min_value=0)
    submission_id = forms.CharField(required=False, max_length=64)


class ReviewSkipForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)  # optional, as Prodigy's ignore


class AdjudicationForm(forms.Form):
    label = forms.CharField(max_length=100)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class GoldItemForm(forms.Form):
    sample_id = forms.IntegerField(min_value=1, label="Sample id")
    label = forms.CharField(max_length=100)
    note = forms.CharField(required=False, max_length=2000)


class GoldRateForm(forms.Form):
    gold_rate = forms.FloatField(min_value=0, max_value=1, label="Gold mix-in rate (0–1)")


class LabelAggregationForm(forms.Form):
    method = forms.ChoiceField(choices=LabelAggregation.choices, label="Combine annotators' answers by")


class ReassignForm(forms.Form):
    user_id = forms.IntegerField(min_value=1)


class ReviewHistoryForm(forms.Form):
    """Filters of an annotator's own history (annotation.review.history), read from the query string."""

    status = forms.ChoiceField(
        choices=[("answered", "answered"), ("skipped", "skipped"), ("all", "answered and skipped")],
        required=False,
        label="Show",
    )
    label = forms.ChoiceField(required=False)
    flagged = forms.ChoiceField(choices=[("", "any"), ("yes", "yes"), ("no", "no")], required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, label_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = [("", "any"), *((name, name) for name in label_names)]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“From” is after “To”: no day is in that range.")
        return data

    def history_filter(self) -> HistoryFilter:
        """The valid filters; a field with a bad value is left out (and shows its error)."""
        self.is_valid()
        data = dict(self.cleaned_data)
        if NON_FIELD_ERRORS in self.errors:  # an empty date range: no date filter, the error says why
            data["since"] = data["until"] = None
        return HistoryFilter(
            status=data.get("status") or ANSWERED,
            label=data.get("label", ""),
            flagged=data.get("flagged", ""),
            since=data.get("since"),
            until=data.get("until"),
        )
