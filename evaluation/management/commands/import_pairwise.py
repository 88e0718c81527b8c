"""Import pairwise judgments into a project: a generic file (prompt, response_a, response_b, annotator, choice
[, source_a, source_b]) as CSV/JSON/JSONL, or the PandaLM test set.

    python manage.py import_pairwise --project 1 ../shared/data/pandalm_testset.json
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluation.preferences.files import PairwiseFileError, parse_pairwise_file
from evaluation.preferences.services import pairwise_import
from synthstudio.models import Project


class Command(BaseCommand):
    help = "Import pairwise judgments (generic or PandaLM format) into a project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path")
        parser.add_argument("--project", type=int, required=True, help="Project id.")

    def handle(self, *args, path: str, project: int, **options) -> None:
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project with id {project}.")
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            with file.open(
                "rb"
            ) as stream:  # streamed, with the limits of an upload (lines, columns, nesting)
                records = parse_pairwise_file(stream, file.name)
        except PairwiseFileError as error:
            raise CommandError(f"{file.name}: {error}") from error
        result = pairwise_import(project=target, records=records, batch=file.name)
        self.stdout.write(
            f"Imported {result['pairs']} pairs with {result['judgments']} judgments from {result['raters']} annotators "
            f"into project {target.id} ({target.name})."
        )
