"""Form of the benchmark page: the held-out share and split seed, or an imported test file."""

from __future__ import annotations

from django import forms

from evaluation.benchmark.downstream import read_test_file

HELD_OUT_ERROR = "The held-out share must be between 0.05 and 0.9."
SEED_ERROR = "The split seed must be a whole number, 0 or more."
DEFAULT_TEST_FRACTION = 0.3
DEFAULT_SEED = 0


class BenchmarkStartForm(forms.Form):
    test_fraction = forms.FloatField(
        required=False, min_value=0.05, max_value=0.9,
        error_messages={"invalid": HELD_OUT_ERROR, "min_value": HELD_OUT_ERROR, "max_value": HELD_OUT_ERROR},
    )  # fmt: skip
    seed = forms.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1,
        error_messages={"invalid": SEED_ERROR, "min_value": SEED_ERROR, "max_value": SEED_ERROR},
    )  # fmt: skip
    # empty files are let through: read_test_file names the problem ("no rows") like any other bad file
    test_file = forms.FileField(required=False, allow_empty_file=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.test_rows: list[dict] | None = None

    def clean_test_fraction(self) -> float:
        value = self.cleaned_data["test_fraction"]
        return DEFAULT_TEST_FRACTION if value is None else value

    def clean_seed(self) -> int:
        value = self.cleaned_data["seed"]
        return DEFAULT_SEED if value is None else value

    def clean_test_file(self):
        upload = self.cleaned_data["test_file"]
        if upload:
            try:
                self.test_rows = read_test_file(upload, upload.name)
            except ValueError as error:
                raise forms.ValidationError(f"Test file: {error}", code="bad_test_file") from None
        return upload

    def first_error(self) -> str:
        return next(message for messages in self.errors.values() for message in messages)
