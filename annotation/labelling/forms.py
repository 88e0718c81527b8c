"""The form of a refine run (FreeAL loop): the labelling form's endpoint and method, plus passes and demos."""

from __future__ import annotations

from django import forms

from annotation.forms import LabellingRunForm


class RefineRunForm(LabellingRunForm):
    max_passes = forms.IntegerField(
        min_value=1,
        max_value=10,
        initial=3,
        help_text="Re-label passes at most; the loop stops early once the noisy set stops shrinking.",
    )
    demos_per_class = forms.IntegerField(
        min_value=1,
        max_value=8,
        initial=2,
        help_text="Demos per label: k-means medoids of the student's clean items of that label.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, prefix="refine", **kwargs)
        del (
            self.fields["demo_count"],
            self.fields["only_unlabelled"],
        )  # the loop picks its own demos and items
