"""Unit tests of the pure labelling core (annotation.labelling, annotation.offline_labeller): no database."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from annotation.labelling.distributions import (
    METHOD_PROMPT_VARIANTS,
    METHOD_VERBALISED,
    CodebookSpec,
    Demo,
    LabelSpec,
    build_label_messages,
    distribution_from_logprobs,
    distribution_from_votes,
    label_keys,
    match_label,
    parse_verbalised,
)
from annotation.labelling.offline import label_texts, offline_readings, softmax

CODEBOOK = CodebookSpec(
    task_description="Classify the stance of a statement about global warming.",
    labels=(
        LabelSpec("agrees", "Says warming is real and serious.", ("Warming is a crisis.",)),
        LabelSpec("neutral", "Takes no side."),
        LabelSpec("disagrees", "Denies or downplays warming."),
    ),
    guidelines="Judge the **author's** stance.",
)


def test_it_gives_labels_single_letter_keys_in_codebook_order():
    assert label_keys(3) == ["A", "B", "C"]
    assert label_keys(28)[25:] == ["Z", "AA", "AB"]


def test_the_prompt_is_the_codebook_with_keys_descriptions_examples_and_guidelines():
    messages = build_label_messages(CODEBOOK, "Sea levels are rising.")
    system = messages[0]["content"]
    assert "A. agrees — Says warming is real and serious." in system
    assert "Example: Warming is a crisis." in system
    assert "C. disagrees" in system
    assert "Judge the **author's** stance." in system
    assert messages[-1] == {"role": "user", "content": "Text: Sea levels are rising."}


def test_demos_become_answered_turns_before_the_text_and_unknown_labels_are_dropped():
    demos = [Demo("It is all a hoax.", "disagrees"), Demo("Whatever.", "not-a-label")]
    messages = build_label_messages(CODEBOOK, "x", demos=demos)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "C"


def test_prompt_variants_paraphrase_the_instruction_and_verbalised_asks_for_json():
    first = build_label_messages(CODEBOOK, "x", method=METHOD_PROMPT_VARIANTS, variant=0)[0]["content"]
    second = build_label_messages(CODEBOOK, "x", method=METHOD_PROMPT_VARIANTS, variant=1)[0]["content"]
    assert first != second
    verbalised = build_label_messages(CODEBOOK, "x", method=METHOD_VERBALISED)[0]["content"]
    assert '"confidence"' in verbalised


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("A", "agrees"),
        (" b.", "neutral"),
        ("C)", "disagrees"),
        ("Neutral", "neutral"),
        ("B. neutral", "neutral"),
        ("D", None),
        ("", None),
        ("I cannot decide", None),
        ("B. agrees", None),
    ],
)
def test_it_matches_answers_to_labels_only_when_they_name_one(answer, expected):
    assert match_label(answer, CODEBOOK) == expected


def test_logprobs_sum_token_variants_and_renormalise_over_the_label_set():
    top = [("A", math.log(0.5)), (" A", math.log(0.1)), ("b", math.log(0.2)), ("The", math.log(0.15))]
    reading = distribution_from_logprobs(top, CODEBOOK, floor=0.0001)
    total = 0.6 + 0.2 + 0.0001
    assert reading.valid and reading.label == "agrees"
    assert reading.distribution["agrees"] == pytest.approx(0.6 / total)
    assert reading.distribution["neutral"] == pytest.approx(0.2 / total)
    assert reading.distribution["disagrees"] == pytest.approx(0.0001 / total)
    assert sum(reading.distribution.values()) == pytest.approx(1.0)
    assert reading.confidence == pytest.approx(reading.distribution["agrees"])


def test_logprobs_naming_no_label_are_invalid_not_guessed():
    reading = distribution_from_logprobs([("The", -0.1), ("I", -2.0)], CODEBOOK)
    assert not reading.valid and reading.label == "" and reading.distribution == {}


def test_votes_give_count_over_valid_answers_and_record_invalid_ones():
    reading = distribution_from_votes(["A", "A", "C", "banana", "a"], CODEBOOK)
    assert reading.label == "agrees"
    assert reading.distribution == {"agrees": 0.75, "neutral": 0.0, "disagrees": 0.25}
    assert reading.details["invalid_answers"] == 1


def test_vote_ties_go_to_the_label_listed_first():
    assert distribution_from_votes(["C", "B"], CODEBOOK).label == "neutral"


def test_votes_with_no_valid_answer_are_invalid():
    reading = distribution_from_votes(["?", ""], CODEBOOK)
    assert not reading.valid and reading.label == ""


def test_verbalised_confidence_goes_to_the_label_and_the_rest_is_shared():
    reading = parse_verbalised(
        json.dumps({"label": "C", "confidence": 0.8, "rationale": "denies it"}), CODEBOOK
    )
    assert reading.label == "disagrees" and reading.rationale == "denies it"
    assert reading.distribution["disagrees"] == pytest.approx(0.8)
    assert reading.distribution["agrees"] == pytest.approx(0.1)


def test_verbalised_percentages_and_prose_around_json_are_read():
    reading = parse_verbalised('Sure! {"label": "neutral", "confidence": 70}', CODEBOOK)
    assert reading.label == "neutral" and reading.confidence == pytest.approx(0.7)


@pytest.mark.parametrize("answer", ['{"label": "Z", "confidence": 0.9}', "not json at all", '{"label": '])
def test_verbalised_answers_without_a_valid_label_are_invalid(answer):
    assert not parse_verbalised(answer, CODEBOOK).valid


def test_offline_readings_put_most_mass_on_the_most_similar_label():
    texts, owners = label_texts(CODEBOOK)
    assert owners == [0, 0, 1, 2]
    label_vectors = np.array([[1, 0, 0], [1, 0.1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    text_vectors = np.array([[0.1, 0.9, 0.0], [0.0, 0.2, 1.0]], dtype=np.float32)
    readings = offline_readings(text_vectors, label_vectors, owners, CODEBOOK, temperature=0.1)
    assert [r.label for r in readings] == ["neutral", "disagrees"]
    assert all(sum(r.distribution.values()) == pytest.approx(1.0) for r in readings)
    assert "offline" in readings[0].rationale


def test_softmax_temperature_sharpens_the_distribution():
    scores = np.array([[0.5, 0.4]])
    assert softmax(scores, 0.01)[0, 0] > softmax(scores, 1.0)[0, 0] > 0.5
