from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from .models import Project, Role


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


class CodebookForm(forms.Form):
    task_description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, help_text="Markdown.")


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
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if not get_user_model().objects.filter(username=username, is_active=True).exists():
            raise forms.ValidationError(f"No active user is called {username!r}. Ask an admin to create the account.")
        return username
