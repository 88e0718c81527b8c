"""Forms of the review queue (the answer form is validated again by annotation.review services)."""

from __future__ import annotations

from django import forms

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


class ReassignForm(forms.Form):
    user_id = forms.IntegerField(min_value=1)
