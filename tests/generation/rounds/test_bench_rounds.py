"""bench_rounds at service level: the loop against the local OpenAI-compatible test server through the real
openai client, with the scripted error pattern by condition and gold answers playing the humans."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from generation.management.commands.bench_rounds import (
    TONE_WORDS,
    ScriptedSentimentGenerator,
    gold_label,
    rounds_benchmark,
)
from generation.models import GenerationRun, RoundState
from synthstudio.models import Sample


def test_the_scripted_generator_errs_on_its_error_value_and_less_with_checked_examples_shown():
    generator = ScriptedSentimentGenerator(error_value="sarcastic", error_rate=0.5)

    def wrong_share(tone: str, demos: str) -> float:
        prompt = f"- label: positive\n- tone: {tone}\n\nExamples written by people:\n{demos}"
        answers = [
            generator({"messages": [{"role": "user", "content": prompt}], "seed": seed}, 0)
            for seed in range(400)
        ]
        return sum(gold_label(answer) != "positive" for answer in answers) / len(answers)

    assert wrong_share("plain", "") == 0.0
    assert wrong_share("sarcastic", "") == 0.5
    assert wrong_share("sarcastic", f"1. {TONE_WORDS['sarcastic']} great (label: positive)") == 0.125


@pytest.mark.django_db(transaction=True)
def test_two_rounds_against_the_test_server_lower_the_corrected_share_and_raise_the_error_value_weight():
    result = rounds_benchmark(rounds=2, per_round=24, error_value="sarcastic", error_rate=0.5)
    first, second = result["rounds"]
    assert result["finished"] and result["stop_reason"] == "Reached the configured 2 rounds."
    assert (first["state"], second["state"]) == (RoundState.CONTINUED, RoundState.STOPPED)
    assert first["samples"] == second["samples"] == 24 and first["reviewed"] == second["reviewed"] == 24
    assert result["llm_requests"] == 48  # every sample came over HTTP from the test server
    assert second["corrected_share"] < first["corrected_share"] and result["corrected_share_falls"]
    assert second["error_value_weight"] > 1.0 == first["error_value_weight"]
    assert second["error_value_share"] > first["error_value_share"]
    assert result["weight_moves_toward_error_value"]
    assert not Sample.objects.filter(
        generation_items__run__in=GenerationRun.objects.all(), provenance__offline=True
    )


def test_the_command_refuses_a_loop_of_one_round():
    with pytest.raises(CommandError, match="--rounds 2 or more"):
        call_command("bench_rounds", "--rounds", "1")
