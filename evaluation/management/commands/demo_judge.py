"""Give the demo project one finished offline judge run (sample ratings A–D), so that Evaluation → judges and
Curation have a judge to show. The offline heuristic judge (evaluation.preferences.offline_judge) is used whatever the
environment says: it is not an LLM and is marked "offline" wherever it shows. Called by `manage.py demo`
after `demo_snapshot`; a project that already has a judge run is left alone. Takes seconds: the samples'
embeddings are already stored by the demo's offline labelling run."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from evaluation.models import JudgeKind, JudgeRun
from evaluation.preferences.judges import judge_run_execute, judge_run_start
from synthstudio.models import Project, Role

PROJECT_NAME = "Customer support intents (demo)"
DEMO_LIMIT = 200


class Command(BaseCommand):
    help = "Run the demo project's first judge run, offline (once)."

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(name=PROJECT_NAME).order_by("id").first()
        if project is None:
            raise CommandError("Run `manage.py demo` first: it creates the demo project.")
        run = JudgeRun.objects.filter(project=project).order_by("id").first()
        if run is None:
            lead = project.memberships.filter(role=Role.LEAD).select_related("user").first().user
            # Executed in-process inside the transaction: the queued task is sent on commit and finds it finished.
            with transaction.atomic():
                run = judge_run_start(
                    project=project,
                    user=lead,
                    kind=JudgeKind.RATING,
                    endpoint=None,
                    limit=DEMO_LIMIT,
                    offline=True,
                )
                judge_run_execute(run=run)
        distribution = " ".join(
            f"{grade} {count}" for grade, count in (run.summary.get("distribution") or {}).items()
        )
        offline = " (offline heuristic judge, not an LLM)" if run.is_offline else ""
        self.stdout.write(f"Demo judge run #{run.id}{offline}: {run.status}, ratings {distribution or '—'}.")
