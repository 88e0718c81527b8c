"""Form of the dashboards: the Recompute button (and the page to come back to)."""

from __future__ import annotations

from django import forms

from synthstudio.models import Project


class MetricsRecomputeForm(forms.Form):
    """`next` is kept only when it is a page of this project (a path, so never another site)."""

    next = forms.CharField(required=False, strip=False)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_next(self) -> str:
        value = self.cleaned_data["next"]
        return value if value.startswith(f"/projects/{self.project.id}/") else ""
