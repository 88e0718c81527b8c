"""Delete export files no snapshot owns any more.

    python manage.py prune_exports --older-than-days 7 [--dry-run]

Export files under MEDIA_ROOT/exports/ are kept while their snapshot exists (snapshots never change, so a
written file is reused). A file whose snapshot row was deleted, one left by a database reset, or a temp file
from a writer that died is removed once it is older than --older-than-days.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluation.curation.services import export_files_prune, export_files_unreferenced


class Command(BaseCommand):
    help = "Delete export files under MEDIA_ROOT/exports/ that no snapshot references."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days",
            type=float,
            required=True,
            help="Only files last modified more than this many days ago.",
        )
        parser.add_argument("--dry-run", action="store_true", help="List the files without deleting them.")

    def handle(self, *args, older_than_days: float, dry_run: bool, **options):
        if older_than_days < 0:
            raise CommandError("--older-than-days must be 0 or more.")
        if dry_run:
            paths = export_files_unreferenced(older_than_days=older_than_days)
        else:
            paths = export_files_prune(older_than_days=older_than_days)
        for path in paths:
            self.stdout.write(str(path))
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {len(paths)} unreferenced export file{'s' if len(paths) != 1 else ''}.")
