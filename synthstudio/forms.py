from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from synthstudio.importing import ColumnMapping
from synthstudio.models import Origin, Project, Role
from synthstudio.sample_search import NO, NO_LABEL, YES, SampleSearch


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class ProjectSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "show_llm_suggestion", "ask_quality_rating", "reservation_minutes"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        labels = {
            "show_llm_suggestion": "Show the LLM's suggestion to reviewers",
            "ask_quality_rating": "Ask reviewers for a quality rating",
            "reservation_minutes": "Reservation (minutes)",
        }
        help_texts = {
            "reservation_minutes": "How long an item stays reserved for the annotator who opened it."
        }


class CodebookForm(forms.Form):
    task_description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    guidelines = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), required=False, help_text="Markdown."
    )


class LabelForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    examples = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="One example per line."
    )
    hotkey = forms.CharField(max_length=1, required=False)

    def as_label(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("name", "").strip():
            return None
        return {
            "name": data["name"].strip(),
            "description": data.get("description", "").strip(),
            "examples": [line.strip() for line in data.get("examples", "").splitlines() if line.strip()],
            "hotkey": data.get("hotkey", "").strip(),
        }


class BaseLabelFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        labels = [form.as_label() for form in self.forms if form.cleaned_data]
        labels = [label for label in labels if label]
        if len(labels) < 2:
            raise forms.ValidationError("A codebook needs at least two labels.")
        names = [label["name"].lower() for label in labels]
        if len(set(names)) != len(names):
            raise forms.ValidationError("Label names must be unique.")
        hotkeys = [label["hotkey"] for label in labels if label["hotkey"]]
        if len(set(hotkeys)) != len(hotkeys):
            raise forms.ValidationError("Hotkeys must be unique.")
        self.labels = labels


LabelFormSet = forms.formset_factory(LabelForm, formset=BaseLabelFormSet, extra=3, max_num=100)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if not get_user_model().objects.filter(username=username, is_active=True).exists():
            raise forms.ValidationError(
                f"No active user is called {username!r}. Invite them by email below: the link lets them "
                "create their account."
            )
        return username


class InvitationForm(forms.Form):
    """Whom to invite: an email address (a new person, or someone with an account) or an existing username."""

    invitee = forms.CharField(
        max_length=254,
        label="Email or username",
        help_text="An email address lets a new person create an account; a username invites that account.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_invitee(self) -> str:
        value = self.cleaned_data["invitee"].strip()
        self.email, self.user = "", None
        if "@" in value:
            try:
                validate_email(value)
            except ValidationError:
                raise forms.ValidationError(f"{value!r} is not a valid email address.") from None
            self.email = value
            return value
        self.user = get_user_model().objects.filter(username=value, is_active=True).first()
        if self.user is None:
            raise forms.ValidationError(
                f"No active user is called {value!r}. Enter their email address to invite a new person."
            )
        if self.project.memberships.filter(user=self.user).exists():
            raise forms.ValidationError(
                f"{value} is already a member; change their role in the table above instead."
            )
        return value


class InvitationSignupForm(UserCreationForm):
    """A person invited by email chooses a username and a password (Django's password validators apply)."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or TSV with a header row, JSONL (one object per line) or a JSON array of objects."
    )
    file_format = forms.ChoiceField(
        choices=[
            ("", "from the file name"),
            ("csv", "CSV"),
            ("tsv", "TSV"),
            ("jsonl", "JSONL"),
            ("json", "JSON"),
        ],
        required=False,
        label="Format",
    )


# Column names that usually mean a role, used to pre-select the mapping.
_COLUMN_GUESSES = {
    "text_columns": ("text", "sentence", "review", "content", "utterance", "message", "body", "input"),
    "gold_label_column": (
        "gold",
        "gold_label",
        "label",
        "human_label",
        "target",
        "class",
        "category",
        "intent",
    ),
    "llm_label_column": ("llm_label", "predicted_label", "prediction", "pred"),
    "llm_confidence_column": ("llm_confidence", "confidence", "score", "probability"),
    "llm_distribution_column": ("llm_distribution", "llm_probs", "distribution", "probs", "probabilities"),
}


class ImportMappingForm(forms.Form):
    text_columns = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        help_text="One column, or several: they are joined into the text (one “column: value” line each) "
        "and kept as structured fields.",
    )
    field_columns = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, required=False, label="Keep as fields",
        help_text="Other columns to keep with each sample (shown beside the text, not labelled).",
    )  # fmt: skip
    gold_label_column = forms.ChoiceField(
        required=False,
        label="Gold / human label",
        help_text="Imported as a human annotation (source: imported).",
    )
    llm_label_column = forms.ChoiceField(required=False, label="LLM label")
    llm_confidence_column = forms.ChoiceField(
        required=False,
        label="LLM confidence",
        help_text="A number in [0, 1]; if empty, p(label) from the distribution.",
    )
    llm_distribution_column = forms.ChoiceField(
        required=False, label="LLM probability distribution",
        help_text='A JSON object {"label": probability}; normalised to sum to 1.',
    )  # fmt: skip

    SINGLE_COLUMN_ROLES = (
        "gold_label_column",
        "llm_label_column",
        "llm_confidence_column",
        "llm_distribution_column",
    )

    def __init__(self, *args, columns: list[str], label_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_names = label_names
        choices = [(name, name) for name in columns]
        self.fields["text_columns"].choices = choices
        self.fields["field_columns"].choices = choices
        for role in self.SINGLE_COLUMN_ROLES:
            self.fields[role].choices = [("", "— none —"), *choices]
        if not self.is_bound:
            self.initial = {**self.guess_initial(columns), **self.initial}

    @staticmethod
    def guess_initial(columns: list[str]) -> dict:
        by_lower = {name.lower(): name for name in columns}
        initial: dict = {}
        taken: set[str] = set()
        for role, guesses in _COLUMN_GUESSES.items():
            match = next((by_lower[g] for g in guesses if g in by_lower and by_lower[g] not in taken), None)
            if role == "text_columns":
                match = match or (columns[0] if columns else None)
                initial[role] = [match] if match else []
            elif match:
                initial[role] = match
            if match:
                taken.add(match)
        return initial

    def clean(self) -> dict:
        data = super().clean()
        text_columns = data.get("text_columns") or []
        used_by_role = {role: data.get(role) for role in self.SINGLE_COLUMN_ROLES if data.get(role)}
        for role, column in used_by_role.items():
            if column in text_columns:
                self.add_error(role, f"{column!r} is already a text column.")
        if len(set(used_by_role.values())) != len(used_by_role):
            raise forms.ValidationError("Each column can play one role only.")
        label_roles = [
            role
            for role in ("gold_label_column", "llm_label_column", "llm_distribution_column")
            if data.get(role)
        ]
        if label_roles and not self.label_names:
            raise forms.ValidationError(
                "The codebook has no labels yet: write the codebook before importing labels."
            )
        if data.get("llm_confidence_column") and not (
            data.get("llm_label_column") or data.get("llm_distribution_column")
        ):
            self.add_error("llm_confidence_column", "A confidence needs an LLM label or distribution column.")
        return data

    def mapping(self) -> ColumnMapping:
        data = self.cleaned_data
        text_columns = list(data["text_columns"])
        return ColumnMapping(
            text_columns=text_columns,
            field_columns=[c for c in data.get("field_columns") or [] if c not in text_columns],
            **{role: data.get(role) or "" for role in self.SINGLE_COLUMN_ROLES},
        )


ANY_YES_NO = [("", "any"), (YES, "yes"), (NO, "no")]


class SampleSearchForm(forms.Form):
    """The samples page's filters (synthstudio.sample_search), read from the query string."""

    q = forms.CharField(required=False, max_length=500, label="Text contains")
    label = forms.ChoiceField(required=False, label="Final label")
    llm_label = forms.ChoiceField(required=False, label="LLM label")
    origin = forms.ChoiceField(required=False, choices=[("", "any"), *Origin.choices], label="Source")
    reviewed = forms.ChoiceField(required=False, choices=ANY_YES_NO, label="Reviewed")
    flagged = forms.ChoiceField(required=False, choices=ANY_YES_NO, label="Flagged")
    routed = forms.ChoiceField(required=False, choices=ANY_YES_NO, label="Routed")
    reason = forms.CharField(required=False, max_length=300, label="Routing reason contains")
    excluded = forms.ChoiceField(required=False, choices=ANY_YES_NO, label="Excluded from snapshots")

    def __init__(self, *args, label_names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labels = [("", "any"), *((name, name) for name in label_names), (NO_LABEL, "no label")]
        self.fields["label"].choices = labels
        self.fields["llm_label"].choices = labels

    def search(self) -> SampleSearch:
        """The valid filters; a field with a bad value is left out (and shows its error)."""
        self.is_valid()
        return SampleSearch.from_dict({name: value.strip() for name, value in self.cleaned_data.items()})
