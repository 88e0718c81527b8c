"""The annotation side of automatic rounds (generation.services.rounds_loop): label a round's samples, route a
batch, tell whether a routed item of the round still waits for a human.

The loop's state machine lives in generation with the runs it moves; these steps need labelling, routing and
the review queue, which generation may not import (ARCHITECTURE.md: synthstudio ← generation ← annotation ←
evaluation). AnnotationConfig.ready registers `AnnotationRoundSteps` with round_steps_register.
"""

from __future__ import annotations

from django.db.models import QuerySet

from annotation.labelling import services as labelling_services
from annotation.models import LabellingRun, ReviewTask
from annotation.routing import services as routing_services
from generation.models import GenerationRun
from generation.services.rounds_loop import LabellingState
from synthstudio.models import JobStatus, Sample


class AnnotationRoundSteps:
    def labelling_start(self, run: GenerationRun) -> int:
        """A labelling run over the project's unlabelled samples with its latest LLM labelling settings
        (endpoint, method, samples per item, temperature, demos), offline when it never used an endpoint."""
        latest = (
            LabellingRun.objects.filter(project=run.project, endpoint__isnull=False)
            .order_by("-created_at")
            .first()
        )
        settings_of = (
            {
                "method": latest.method,
                "endpoint": latest.endpoint,
                "samples_per_item": latest.samples_per_item,
                "temperature": latest.temperature,
                "demo_count": latest.demo_count,
            }
            if latest is not None
            else {"method": "offline", "endpoint": None}
        )
        labelling = labelling_services.labelling_run_start(
            project=run.project, user=run.created_by, only_unlabelled=True, **settings_of
        )
        return labelling.pk

    def labelling_state(self, labelling_run_id: int) -> LabellingState | None:
        labelling = LabellingRun.objects.filter(pk=labelling_run_id).first()
        if labelling is None:
            return None
        return LabellingState(
            finished=labelling.is_finished,
            succeeded=labelling.status == JobStatus.SUCCEEDED,
            status_text=labelling.get_status_display().lower(),
        )

    def route(self, run: GenerationRun) -> None:
        routing_services.routing_route_next_batch(project=run.project)

    def waits_for_answers(self, samples: QuerySet[Sample]) -> bool:
        return ReviewTask.objects.filter(sample__in=samples, is_open=True).exists()
