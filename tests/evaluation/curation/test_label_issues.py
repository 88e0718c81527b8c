"""final_labels_refresh_many gives the same final labels as final_label_refresh, in bulk."""

from annotation.review.final_labels import final_label_refresh, final_labels_refresh_many
from synthstudio.models import HumanAnnotation, HumanSource, LabelMethod, LLMAnnotation, Sample


def test_the_bulk_refresh_agrees_with_the_per_sample_refresh(project, samples, lead, annotator):
    def llm(sample, label, confidence, current=True):
        LLMAnnotation.objects.create(
            sample=sample,
            label=label,
            distribution={label: confidence},
            confidence=confidence,
            method=LabelMethod.IMPORTED,
            is_current=current,
        )

    llm(samples[0], "negative", 0.4, current=False)
    llm(samples[0], "positive", 0.8)
    llm(samples[1], "negative", 0.7)
    HumanAnnotation.objects.create(sample=samples[1], annotator=annotator, label="positive")
    HumanAnnotation.objects.create(sample=samples[1], annotator=lead, label="positive")
    llm(samples[2], "positive", 0.6)
    HumanAnnotation.objects.create(sample=samples[2], annotator=annotator, label="positive")
    HumanAnnotation.objects.create(
        sample=samples[2], annotator=lead, label="negative"
    )  # a tie: the LLM label stays
    HumanAnnotation.objects.create(sample=samples[3], annotator=annotator, label="positive")
    HumanAnnotation.objects.create(sample=samples[3], label="negative", source=HumanSource.ADJUDICATION)
    ids = [sample.id for sample in samples]
    assert final_labels_refresh_many(sample_ids=ids, batch_size=3) == 4
    bulk = list(
        Sample.objects.filter(id__in=ids)
        .order_by("id")
        .values_list("final_label", "final_source", "final_weight")
    )
    assert bulk == [
        ("positive", "llm", 0.8),
        ("positive", "human", 1.0),
        ("positive", "llm", 0.6),
        ("negative", "adjudicated", 1.0),
    ]
    for sample in samples:
        final_label_refresh(sample=sample)
    assert (
        list(
            Sample.objects.filter(id__in=ids)
            .order_by("id")
            .values_list("final_label", "final_source", "final_weight")
        )
        == bulk
    )
