"""CoAnnotating's reasons say what produced each distribution: entropy over the labelling run's prompt variants
or self-consistency samples (Li et al. 2023's uncertainty), or plainly over token logprobs / an imported
distribution — never "over prompt variants" for a distribution that was not."""

from __future__ import annotations

import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import LabellingRun
from annotation.routing.provenance import describe_distribution
from annotation.routing.services import routing_policy_for, routing_route_next_batch
from synthstudio.models import LabelMethod, Sample


def labelled(project, method: str, votes: list[tuple[int, int]], *, samples_per_item: int, run_ref: str = ""):
    """One sample per (positive, negative) vote count, labelled by a run of `method`."""
    run = LabellingRun.objects.create(
        project=project, codebook=project.codebook, method=method, samples_per_item=samples_per_item
    )
    samples = [Sample.objects.create(project=project, text=f"{method} review {i}") for i in range(len(votes))]
    readings = []
    for positive, negative in votes:
        total = positive + negative
        label = "positive" if positive >= negative else "negative"
        distribution = {"positive": positive / total, "negative": negative / total}
        readings.append(LabelReading(label, distribution, True, confidence=distribution[label]))
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=method,
        model_name="test",
        run_ref=run_ref or run.run_ref,
    )
    return samples


@pytest.fixture
def coannotating(project):
    routing = routing_policy_for(project=project)
    routing.strategy = "coannotating"
    routing.cold_start_size = 0
    routing.audit_share = 0.0
    routing.budget_kind = "count"
    routing.budget_count = 10
    routing.batch_size = 10
    routing.save()
    return routing


def test_reasons_name_the_prompt_variants_and_self_consistency_samples(project, coannotating):
    variants = labelled(project, LabelMethod.PROMPT_VARIANTS, [(3, 2), (5, 0)], samples_per_item=5)
    consistency = labelled(project, LabelMethod.SELF_CONSISTENCY, [(4, 3), (7, 0)], samples_per_item=7)
    logprobs = labelled(project, LabelMethod.LOGPROBS, [(6, 4)], samples_per_item=1)
    imported = labelled(project, LabelMethod.IMPORTED, [(9, 1)], samples_per_item=1, run_ref="import")
    tasks = routing_route_next_batch(project=project)
    reason = {task.sample_id: task.reason for task in tasks}
    assert reason[variants[0].pk] == "entropy over 5 prompt variants 0.67"
    assert reason[variants[1].pk] == "entropy over 5 prompt variants 0.00"
    assert reason[consistency[0].pk] == "entropy over 7 self-consistency samples 0.68"
    assert reason[logprobs[0].pk] == "entropy over token logprobs 0.67"
    assert reason[imported[0].pk] == "entropy over an imported distribution 0.33"
    # the most uncertain first, whatever produced the distribution (the paper's allocation: humans get the top)
    assert max(tasks, key=lambda t: t.priority).sample_id == consistency[0].pk


def test_more_answers_than_paraphrases_are_named_as_such():
    assert describe_distribution(LabelMethod.PROMPT_VARIANTS, 9) == "9 answers to 5 prompt variants"
    assert describe_distribution(LabelMethod.PROMPT_VARIANTS, 3) == "3 prompt variants"
    assert describe_distribution(LabelMethod.VERBALISED, None) == "a verbalised confidence"
    assert describe_distribution(LabelMethod.OFFLINE, None) == "the offline labeller's similarities"
