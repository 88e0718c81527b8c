"""Give the demo project a first curated snapshot (LLM confidence >= 0.5, 80/20 stratified split), so that
Curation and export have something to show. Called by `manage.py demo` after `demo_workflow`; a project that
already has a snapshot is left alone."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import curation_settings_save, snapshot_create
from evaluation.models import Snapshot
from synthstudio.models import Project, Role

PROJECT_NAME = "Customer support intents (demo)"
DEMO_FILTERS = FilterSettings(min_confidence=0.5)
DEMO_SPLIT = {"train": 0.8, "test": 0.2}


class Command(BaseCommand):
    help = "Create the demo project's first snapshot (once)."

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(name=PROJECT_NAME).order_by("id").first()
        if project is None:
            raise CommandError("Run `manage.py demo` first: it creates the demo project.")
        snapshot = Snapshot.objects.filter(project=project, is_ready=True).order_by("version").first()
        if snapshot is None:
            lead = project.memberships.filter(role=Role.LEAD).select_related("user").first().user
            curation_settings_save(project=project, settings=DEMO_FILTERS)
            snapshot = snapshot_create(
                project=project,
                user=lead,
                settings=DEMO_FILTERS,
                split_fractions=DEMO_SPLIT,
                note="demo: first snapshot (offline LLM labels with confidence >= 0.5, seed labels)",
            )
        self.stdout.write(f"Demo snapshot v{snapshot.version}: {snapshot.item_count} items.")
