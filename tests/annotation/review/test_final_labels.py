from annotation.review.final_labels import decide_final_label, final_label_refresh
from synthstudio.models import HumanAnnotation, HumanSource, LabelMethod, LLMAnnotation


def test_adjudication_wins_over_everything():
    d = decide_final_label(adjudicated="b", human_labels=["a", "a"], llm_label="a", llm_confidence=0.9)
    assert (d.label, d.source, d.weight) == ("b", "adjudicated", 1.0)


def test_human_majority_wins_over_the_llm_and_weighs_its_share():
    d = decide_final_label(adjudicated=None, human_labels=["b", "b", "a"], llm_label="a", llm_confidence=0.9)
    assert (d.label, d.source) == ("b", "human")
    assert abs(d.weight - 2 / 3) < 1e-12


def test_a_human_tie_keeps_the_llm_label_and_asks_for_adjudication():
    d = decide_final_label(adjudicated=None, human_labels=["a", "b"], llm_label="a", llm_confidence=0.6)
    assert (d.label, d.source, d.needs_adjudication) == ("a", "llm", True)
    assert d.weight == 0.6


def test_no_labels_at_all_is_unlabelled():
    d = decide_final_label(adjudicated=None, human_labels=[], llm_label=None, llm_confidence=None)
    assert (d.label, d.source, d.weight) == ("", "", 0.0)


def test_refresh_stores_the_newest_answer_per_annotator(samples, annotator):
    sample = samples[0]
    LLMAnnotation.objects.create(
        sample=sample,
        label="positive",
        distribution={"positive": 0.8, "negative": 0.2},
        confidence=0.8,
        method=LabelMethod.IMPORTED,
    )
    final_label_refresh(sample=sample)
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source, sample.final_weight) == ("positive", "llm", 0.8)
    HumanAnnotation.objects.create(
        sample=sample, annotator=annotator, label="positive", source=HumanSource.REVIEW
    )
    HumanAnnotation.objects.create(
        sample=sample, annotator=annotator, label="negative", source=HumanSource.REVIEW
    )
    final_label_refresh(sample=sample)
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source, sample.final_weight) == ("negative", "human", 1.0)
