"""Forms of the curation pages: filter settings, snapshot options, label issues to review, Label Studio upload,
API tokens."""

from __future__ import annotations

from django import forms
from django.conf import settings

from evaluation.curation.filters import FilterSettings
from evaluation.models import SampleWeighting
from synthstudio.user_regex import MAX_PATTERN_CHARS, UserPatternError, compile_user_pattern

PATTERN_HELP = (
    "RE2 syntax, matched in linear time: no backreferences or lookarounds; \\w and \\b are ASCII "
    f"(\\pL is any letter). At most {MAX_PATTERN_CHARS} characters."
)


def validate_user_pattern(value: str) -> None:
    """A pattern the curation filters can run; the length cap and RE2's refusals become the field's error."""
    try:
        compile_user_pattern(value)
    except UserPatternError as error:
        raise forms.ValidationError(str(error), code="user_pattern") from None


def pattern_field(label: str) -> forms.CharField:
    # no max_length: the validator names the same limit, and a second "at most N characters" would repeat it
    return forms.CharField(
        required=False,
        label=label,
        help_text=PATTERN_HELP,
        validators=[validate_user_pattern],
        widget=forms.TextInput(attrs={"maxlength": MAX_PATTERN_CHARS}),
    )


SPLIT_CHOICES = [
    ("", "No split (all train)"),
    ("80/10/10", "train 80 / validation 10 / test 10"),
    ("80/20", "train 80 / test 20"),
    ("70/15/15", "train 70 / validation 15 / test 15"),
]


class FilterSettingsForm(forms.Form):
    exact_duplicates = forms.BooleanField(required=False, label="Drop exact duplicates")
    near_duplicate_threshold = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=1.0,
        label="Drop near-duplicates above cosine",
        help_text="Embedding cosine similarity, e.g. 0.95. Empty: off.",
    )
    min_judge_score = forms.FloatField(
        required=False,
        min_value=0,
        max_value=4,
        label="Minimum judge rating score",
        help_text="LLM-judge ratings A=4, B=3, C=2, D=1; unrated items are kept. Empty: off.",
    )
    min_confidence = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Minimum LLM confidence",
        help_text="Applies to LLM-labelled items only. Empty: off.",
    )
    require_consistency = forms.BooleanField(
        required=False, label="Drop items labelled differently across runs/prompts"
    )
    drop_flagged = forms.BooleanField(required=False, label="Drop items a reviewer flagged")
    min_chars = forms.IntegerField(required=False, min_value=0, label="Minimum characters")
    max_chars = forms.IntegerField(required=False, min_value=1, label="Maximum characters")
    must_match = pattern_field("Text must match (regex)")
    must_not_match = pattern_field("Text must not match (regex)")

    @classmethod
    def initial_from(cls, settings: FilterSettings) -> FilterSettingsForm:
        return cls(initial=settings.as_dict())

    def to_settings(self) -> FilterSettings:
        data = self.cleaned_data
        return FilterSettings(
            exact_duplicates=bool(data["exact_duplicates"]),
            near_duplicate_threshold=data["near_duplicate_threshold"],
            min_judge_score=data["min_judge_score"],
            min_confidence=data["min_confidence"],
            require_consistency=bool(data["require_consistency"]),
            drop_flagged=bool(data["drop_flagged"]),
            min_chars=data["min_chars"] or 0,
            max_chars=data["max_chars"],
            must_match=data["must_match"] or "",
            must_not_match=data["must_not_match"] or "",
        )


class SnapshotForm(FilterSettingsForm):
    note = forms.CharField(required=False, max_length=300)
    split = forms.ChoiceField(required=False, choices=SPLIT_CHOICES)
    licence = forms.CharField(
        required=False, max_length=100, initial="unknown", help_text="For the dataset card."
    )
    sample_weights = forms.ChoiceField(
        required=False,  # left out: the project's saved choice stays
        choices=SampleWeighting.choices,
        label="Sample weights",
        help_text="The project's choice for this and later snapshots and their exports. Learned: each "
        "LLM-labelled item weighs as likely as a model fitted on the human-verified items finds its label; "
        "the dataset card names the method.",
    )

    def split_fractions(self) -> dict[str, float]:
        parts = [float(p) / 100 for p in (self.cleaned_data.get("split") or "").split("/") if p]
        names = ["train", "validation", "test"] if len(parts) == 3 else ["train", "test"]
        return dict(zip(names, parts, strict=False)) if parts else {}


class LabelStudioImportForm(forms.Form):
    tool = forms.ChoiceField(
        label="Exported from",
        choices=[
            ("labelstudio", "Label Studio (JSON, JSON_MIN or CSV)"),
            ("prodigy", "Prodigy (db-out JSONL)"),
            ("doccano", "doccano (JSONL)"),
            ("argilla", "Argilla v2 (records.json of to_disk)"),
        ],
        initial="labelstudio",
        required=False,  # Label Studio when left out
    )
    file = forms.FileField(
        help_text="A Label Studio export: JSON (best: the snapshot export with full predictions), JSON_MIN or CSV; "
        "or another tool's file as chosen above."
    )
    text_key = forms.CharField(
        required=False,
        max_length=200,
        help_text="The data key (Argilla: the field) that holds the text; empty means `text`. The keys found are "
        "listed when the file has no `text`.",
    )
    label_key = forms.CharField(
        required=False,
        max_length=200,
        help_text="JSON_MIN and CSV: the column holding the choice (the Choices control's name); Argilla: the "
        "label question. Empty means the only one that can hold it.",
    )
    control_name = forms.CharField(
        required=False,
        max_length=200,
        help_text="JSON only, when tasks answer several Choices controls: the one holding the label.",
    )
    skip_prediction_ids = forms.BooleanField(
        required=False,
        label="Import without the predictions listed as ids",
        help_text="Label Studio's Export button lists predictions as ids only; tick this to import the tasks and "
        "annotations anyway (the predictions are left out and counted).",
    )

    def clean_tool(self) -> str:
        return self.cleaned_data.get("tool") or "labelstudio"

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size / 1e6:.0f} MB; the limit is {limit / 1e6:.0f} MB (IMPORT_MAX_MB)."
            )
        return upload


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where you will use it, e.g. 'training cluster'.")


class LabelIssuesSendForm(forms.Form):
    """The label issues of one refinement run to send to the review queue (ticked boxes, sample ids)."""

    sample = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args, issues: list[dict], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sample"].choices = [
            (str(issue["sample_id"]), str(issue["sample_id"])) for issue in issues
        ]
