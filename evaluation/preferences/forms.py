"""Forms of the preference pages: a pairwise file to import, pairs from two generation runs, a choice on a pair,
starting a judge run."""

from __future__ import annotations

from django import forms

from evaluation.models import JudgeKind
from evaluation.preferences.files import PairRecord, PairwiseFileError, parse_pairwise_file
from generation.models import LLMEndpoint
from synthstudio.models import Project

OFFLINE_ENDPOINT = "offline"
JUDGE_LIMIT_DEFAULT, JUDGE_LIMIT_MIN, JUDGE_LIMIT_MAX = 200, 1, 5000


class PairwiseImportForm(forms.Form):
    """A file of judged pairs (generic JSON/JSONL/CSV or the PandaLM test set), parsed into `records`."""

    # empty files are let through: the parser names the problem like any other bad file
    file = forms.FileField(allow_empty_file=True, error_messages={"required": "Choose a file to import."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[PairRecord] = []

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            self.records = parse_pairwise_file(upload, upload.name)
        except PairwiseFileError as error:
            raise forms.ValidationError(f"Could not import {upload.name}: {error}", code="bad_file") from None
        return upload


class PairChoiceForm(forms.Form):
    """A choice on the Compare pairs page, by position: the first response, the second, or a tie."""

    item = forms.IntegerField(min_value=1)
    choice = forms.ChoiceField(choices=[("first", "First"), ("second", "Second"), ("tie", "Tie")])


class PairsFromGenerationForm(forms.Form):
    """Two generation runs or configs ("run:<id>" / "config:<id>"); the service says what is wrong with them."""

    a = forms.CharField(required=False, strip=False)
    b = forms.CharField(required=False, strip=False)


class ClampedIntegerField(forms.IntegerField):
    """A whole number forced into [low, high]; empty or not a number gives `default` (a box with a sensible
    fallback, not a question worth an error)."""

    def __init__(self, *, low: int, high: int, default: int, **kwargs) -> None:
        self.low, self.high, self.default = low, high, default
        super().__init__(required=False, **kwargs)

    def to_python(self, value) -> int:
        try:
            number = super().to_python(value)
        except forms.ValidationError:
            number = None
        return self.default if number is None else max(self.low, min(self.high, number))


class JudgeStartForm(forms.Form):
    """What an LLM (or the offline) judge should do. `endpoint` is empty (the environment's default),
    "offline", or the id of an endpoint usable in the project; cleaned to that endpoint, None or "offline"."""

    kind = forms.ChoiceField(choices=JudgeKind.choices)
    endpoint = forms.CharField(required=False, strip=False)
    limit = ClampedIntegerField(low=JUDGE_LIMIT_MIN, high=JUDGE_LIMIT_MAX, default=JUDGE_LIMIT_DEFAULT)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_endpoint(self) -> LLMEndpoint | str | None:
        value = self.cleaned_data["endpoint"]
        if not value:
            return None
        if value == OFFLINE_ENDPOINT:
            return OFFLINE_ENDPOINT
        # isdecimal, not isdigit: "²" is a digit that int() refuses
        endpoint = (
            LLMEndpoint.objects.usable_in(self.project).filter(pk=int(value)).first()
            if value.isdecimal()
            else None
        )
        if endpoint is None:
            raise forms.ValidationError("No such endpoint.", code="unknown_endpoint")
        return endpoint
