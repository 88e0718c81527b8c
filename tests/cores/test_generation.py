"""Pure cores of generation (no database): templates, conditions, reweighting, demos, Markov, schema."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from generation import prompts
from generation.conditions import (
    all_combinations,
    coverage,
    plan_conditions,
    random_words,
    reweight_toward_weakness,
    vocabulary_from,
)
from generation.demo_selection import pick_demos, pick_kmeans_medoids, pick_most_similar, pick_votek
from generation.llm.offline import MarkovTextModel, OfflineGenerator
from generation.llm.schema import check_schema, validate

DIMS = [("topic", ["plot", "acting", "music"]), ("length", ["short", "long"])]


# -- templates ----------------------------------------------------------------------------------------------


def test_render_substitutes_placeholders_with_or_without_spaces():
    assert (
        prompts.render("A {{topic}} and {{ length }}.", {"topic": "plot", "length": "short"})
        == "A plot and short."
    )


def test_render_refuses_an_unknown_placeholder_naming_it():
    with pytest.raises(prompts.TemplateError, match="mood"):
        prompts.render("{{ mood }}", {})


def test_template_problems_name_unknown_placeholders_and_reject_expressions_and_tags():
    problems = prompts.template_problems("{{ topic }} {{ mood }} {{ user.password }} {% load x %}", ["topic"])
    assert any("Unknown placeholder {{ mood }}" in p for p in problems)
    assert any("user.password" in p and "not a placeholder" in p for p in problems)
    assert any("Template tags" in p for p in problems)
    assert prompts.template_problems(prompts.DEFAULT_TEMPLATE, []) == []


def test_rendering_never_evaluates_values_as_templates():
    assert prompts.render("{{ topic }}", {"topic": "{{ secret }}"}) == "{{ secret }}"


def test_format_instructions_list_the_schema_and_enum():
    schema = prompts.default_schema("single", ["positive", "negative"])
    assert (
        prompts.format_instructions(schema)
        == 'Answer with one JSON object and nothing else: {"text": string, "label": one of positive, negative}.'
    )


def test_dialogue_steps_alternate_roles_and_see_the_whole_transcript():
    messages, schema = prompts.later_step(
        "dialogue", 2, [{"text": "Hi"}, "Hello, how can I help?"], values={"task": "T"}, labels=[]
    )
    assert schema is None
    content = messages[0]["content"]
    assert "User: Hi\nAssistant: Hello, how can I help?" in content and "next user turn" in content
    made = prompts.sample_from_outputs("dialogue", [{"text": "Hi"}, "Hello", "Thanks"], {})
    assert [t["role"] for t in made["fields"]["turns"]] == ["user", "assistant", "user"]


def test_input_then_label_takes_the_label_from_the_second_step():
    messages, schema = prompts.later_step(
        "input_then_label",
        1,
        [{"text": "Great film"}],
        values={"task": "T", "labels": "- a"},
        labels=["a", "b"],
    )
    assert "Great film" in messages[0]["content"] and schema["properties"]["label"]["enum"] == ["a", "b"]
    made = prompts.sample_from_outputs(
        "input_then_label", [{"text": "Great film"}, {"label": "b"}], {"label": "a"}
    )
    assert made == {"text": "Great film", "label": "b", "fields": {}}


def test_instruction_then_response_keeps_both_parts():
    messages, _ = prompts.later_step(
        "instruction_then_response", 1, [{"instruction": "Name a colour"}], values={}, labels=[]
    )
    assert messages == [{"role": "user", "content": "Name a colour"}]
    made = prompts.sample_from_outputs(
        "instruction_then_response", [{"instruction": "Name a colour"}, "Blue"], {}
    )
    assert made["fields"] == {"instruction": "Name a colour", "response": "Blue"}


# -- conditions ---------------------------------------------------------------------------------------------


def test_all_combinations_enumerates_the_product_in_order():
    combos = all_combinations(DIMS)
    assert (
        len(combos) == 6
        and combos[0] == {"topic": "plot", "length": "short"}
        and combos[1]["length"] == "long"
    )
    assert plan_conditions(DIMS, 8, mode="all")[6] == combos[0]


def test_balanced_sampling_uses_every_combination_once_before_repeating():
    plans = plan_conditions(DIMS, 6, mode="balanced", seed=1)
    assert len({tuple(p.items()) for p in plans}) == 6
    twelve = plan_conditions(DIMS, 12, mode="balanced", seed=1)
    assert Counter(tuple(p.items()) for p in twelve) == Counter(
        {tuple(c.items()): 2 for c in all_combinations(DIMS)}
    )


def test_balanced_sampling_keeps_value_counts_even_on_a_partial_pass():
    plans = plan_conditions(DIMS, 4, mode="balanced", seed=7)
    counts = coverage(plans)
    assert sorted(counts["length"].values()) == [2, 2]
    assert max(counts["topic"].values()) - min(counts["topic"].values()) <= 1


def test_weights_shift_value_counts_proportionally():
    plans = plan_conditions([("label", ["a", "b"])], 30, mode="balanced", weights={"label": {"a": 2, "b": 1}})
    assert coverage(plans)["label"] == Counter({"a": 20, "b": 10})


def test_a_zero_weight_value_is_never_used():
    plans = plan_conditions(DIMS, 10, weights={"topic": {"music": 0}})
    assert "music" not in coverage(plans)["topic"]


def test_huge_condition_spaces_balance_each_dimension():
    dims = [(f"d{i}", [str(v) for v in range(10)]) for i in range(6)]  # a million combinations
    plans = plan_conditions(dims, 50, seed=3)
    assert all(set(c.values()) == {5} for c in coverage(plans).values())


def test_random_words_come_from_the_vocabulary():
    vocabulary = vocabulary_from(["The quick brown foxes jumped", "quick foxes again"])
    assert vocabulary[:2] == ["foxes", "quick"] and "the" not in vocabulary
    words = random_words(vocabulary, 2, random.Random(0))
    assert len(words) == 2 and set(words) <= set(vocabulary)


def test_reweighting_moves_weight_toward_the_most_corrected_value():
    stats = {
        "label": {
            "a": {"generated": 10, "reviewed": 10, "corrected": 5},
            "b": {"generated": 10, "reviewed": 10, "corrected": 0},
        }
    }
    weights = reweight_toward_weakness([("label", ["a", "b"])], None, stats)
    # error a = 6/12 = 0.5, b = 1/12; mean 7/24 → weak a = 12/7, b = 2/7; equal coverage; scaled to mean 1
    assert weights["label"]["a"] == pytest.approx(12 / 7, abs=1e-5)
    assert weights["label"]["b"] == pytest.approx(2 / 7, abs=1e-5)


def test_reweighting_favours_thinly_covered_values_when_nobody_reviewed():
    stats = {"topic": {"plot": {"generated": 9}, "acting": {"generated": 1}}}
    weights = reweight_toward_weakness([("topic", ["plot", "acting"])], None, stats)
    # thin = (5+1)/(9+1) = 0.6 and (5+1)/(1+1) = 3 → scaled to mean 1: 1/3 and 5/3
    assert weights["topic"] == pytest.approx({"plot": 1 / 3, "acting": 5 / 3}, abs=1e-5)


def test_reweighting_with_strength_zero_keeps_the_weights():
    stats = {"label": {"a": {"generated": 3, "reviewed": 3, "corrected": 3}}}
    assert reweight_toward_weakness(
        [("label", ["a", "b"])], {"label": {"a": 1, "b": 3}}, stats, strength=0
    ) == {"label": {"a": 0.5, "b": 1.5}}


# -- demos --------------------------------------------------------------------------------------------------

VECTORS = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], dtype=np.float32)


def test_most_similar_picks_the_nearest_by_cosine():
    assert pick_most_similar(VECTORS, [0, 1, 2, 3, 4], np.array([0.0, 1.0]), 2) == [2, 3]


def test_kmeans_medoids_pick_one_item_per_cluster():
    picks = pick_kmeans_medoids(VECTORS, [0, 1, 2, 3], 2, seed=0)
    assert len(picks) == 2 and {0, 1} & set(picks) and {2, 3} & set(picks)


def test_verified_items_come_before_seeds():
    picks = pick_demos("random", 3, pool_size=5, verified_count=2, rng=random.Random(0))
    assert set(picks[:2]) == {0, 1} and picks[2] in {2, 3, 4}
    assert pick_demos(
        "similar", 1, pool_size=5, verified_count=2, vectors=VECTORS, target=np.array([0.0, 1.0])
    ) == [1]
    assert pick_demos("none", 3, pool_size=5, verified_count=2) == []


def three_blobs(per_blob: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around three orthogonal centres, shuffled; returns (vectors, blob of each row)."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(3)
    vectors = np.vstack([centre + rng.normal(0, 0.5, (per_blob, 3)) for centre in centres])
    blobs = np.repeat(np.arange(3), per_blob)
    order = rng.permutation(len(vectors))
    return vectors[order], blobs[order]


def test_votek_demos_are_k_distinct_pool_items():
    vectors, _ = three_blobs()
    picks = pick_votek(vectors, list(range(30)), 5)
    assert len(picks) == 5 and len(set(picks)) == 5 and set(picks) <= set(range(30))
    assert pick_votek(vectors, [4, 7], 3) == [4, 7]


@pytest.mark.parametrize("seed", range(5))
def test_votek_demos_take_one_item_from_each_of_three_separated_blobs(seed):
    vectors, blobs = three_blobs(seed=seed)
    picks = pick_votek(vectors, list(range(30)), 3)
    assert sorted(blobs[picks]) == [0, 1, 2]


def test_votek_demos_are_the_same_every_time():
    vectors, _ = three_blobs()
    first = pick_demos("votek", 4, pool_size=30, verified_count=0, vectors=vectors, seed=0)
    assert pick_demos("votek", 4, pool_size=30, verified_count=0, vectors=vectors.copy(), seed=99) == first


def test_votek_demos_fill_up_in_pool_order_when_vote_k_runs_out_of_voters():
    # four random points, three demos: vote-k itself stops after two (no unpicked item keeps a voter)
    vectors = np.random.default_rng(0).normal(size=(4, 4))
    picks = pick_votek(vectors, [0, 1, 2, 3], 3)
    assert picks[:2] == [0, 2] and picks[2] == 1


def test_votek_demos_take_verified_items_first_and_only_from_the_given_candidates():
    vectors, blobs = three_blobs()
    picks = pick_demos("votek", 4, pool_size=30, verified_count=3, vectors=vectors)
    assert set(picks[:3]) == {0, 1, 2} and len(picks) == 4 and picks[3] >= 3
    assert pick_votek(vectors, [10, 20, 25], 1)[0] in {10, 20, 25}
    with pytest.raises(ValueError, match="'votek' needs vectors"):
        pick_demos("votek", 2, pool_size=5, verified_count=0)


def test_annotation_and_generation_share_one_vote_k():
    import annotation.routing.selection
    import synthstudio.votek

    assert annotation.routing.selection.votek_select is synthstudio.votek.votek_select
    assert annotation.routing.selection.votek_two_stage_select is synthstudio.votek.votek_two_stage_select
    assert annotation.routing.selection.VoteGraph is synthstudio.votek.VoteGraph


# -- offline generator ------------------------------------------------------------------------------------


def test_the_markov_model_only_emits_words_it_has_seen():
    model = MarkovTextModel(["the film was good", "the acting was bad"])
    text = model.generate(random.Random(1))
    assert set(text.split()) <= {"the", "film", "was", "good", "acting", "bad"} and text.startswith("the")


def test_the_offline_generator_uses_the_labels_own_texts():
    generator = OfflineGenerator({"positive": ["lovely lovely film"], "negative": ["awful awful film"]})
    assert "awful" in generator.text(random.Random(0), "negative") and "lovely" not in generator.text(
        random.Random(0), "negative"
    )
    assert generator.label_for(random.Random(0), "", ["positive", "negative"]) in {"positive", "negative"}


# -- schema -------------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "label": {"enum": ["a", "b"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["text", "label"],
    "additionalProperties": False,
}


def test_schema_validation_accepts_a_valid_object():
    assert validate({"text": "x", "label": "a", "tags": ["t"]}, SCHEMA) == []


def test_schema_validation_names_each_problem():
    problems = validate({"text": "", "label": "c", "tags": [1], "extra": 1}, SCHEMA)
    assert problems == [
        "$: unexpected property 'extra'",
        "$.label: 'c' is not one of ['a', 'b']",
        "$.tags[0]: expected string, got integer",
        "$.text: '' should be non-empty",
    ]
    assert validate(["x"], SCHEMA) == ["$: expected object, got array"]
    assert validate({"text": "x"}, SCHEMA) == ["$: missing required property 'label'"]


def test_schema_validation_covers_draft_2020_12_with_item_paths():
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
        "$defs": {
            "item": {
                "type": "object",
                "properties": {"label": {"enum": ["a", "b"]}, "score": {"type": "number", "maximum": 1}},
                "anyOf": [{"required": ["label"]}, {"required": ["score"]}],
            }
        },
    }
    answer = {"items": [{"label": "a"}, {"score": 0.5}, {"label": "x"}, {"score": 2}, {}]}
    assert validate(answer, schema) == [
        "$.items[2].label: 'x' is not one of ['a', 'b']",
        "$.items[3].score: 2 is greater than the maximum of 1",
        "$.items[4]: {} is not valid under any of the given schemas",
    ]
    assert validate({"n": 3}, {"properties": {"n": {"type": "integer", "multipleOf": 2}}}) == [
        "$.n: 3 is not a multiple of 2"
    ]
    assert validate({"anything": 1}, None) == []


def test_schema_check_flags_bad_schemas():
    assert check_schema({"type": "thing"}) == [
        "Unknown type 'thing' at $.type; use one of "
        "['object', 'array', 'string', 'integer', 'number', 'boolean', 'null']."
    ]
    assert check_schema({"type": "object", "properties": {}, "required": ["x"]}) == [
        "Required property 'x' is not among the properties ($)."
    ]
    assert check_schema({"type": "object", "properties": {"x": 1}}) == [
        "$.properties.x: 1 is not of type 'object', 'boolean'"
    ]
    assert check_schema({"type": "object", "properties": {"x": {"type": "string", "minLength": -1}}}) == [
        "$.properties.x.minLength: -1 is less than the minimum of 0"
    ]
    assert check_schema([]) == ["The schema must be a JSON object."]
