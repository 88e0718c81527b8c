"""From cached dashboard numbers to charts and downloadable tables (no Django, no database).

Every chart on the evaluation pages has a table here with the same numbers; the CSV download serves that
table, so what is drawn and what is downloaded cannot drift apart.
"""

from __future__ import annotations

from evaluation.dashboards import charts

Table = tuple[list[str], list[list[object]]]


def _r(value: object, digits: int = 4) -> object:
    return round(value, digits) if isinstance(value, float) else ("" if value is None else value)


# ---------------------------------------------------------------- tables (the CSV downloads)


def label_distribution_table(payload: dict) -> Table:
    labels = payload.get("labels") or {}
    names = labels.get("names", [])
    rows = [
        [n, f, m, h]
        for n, f, m, h in zip(
            names, labels.get("final", []), labels.get("llm", []), labels.get("human", []), strict=False
        )
    ]
    return ["label", "final_label_count", "llm_label_count", "human_answer_count"], rows


def _histogram_table(edges: list[float], counts: list[int], name: str) -> Table:
    rows = [[_r(edges[i]), _r(edges[i + 1]), counts[i]] for i in range(len(counts))]
    return [f"{name}_from", f"{name}_to", "count"], rows


def confidence_table(payload: dict) -> Table:
    c = payload.get("confidence") or {}
    return _histogram_table(c.get("confidence_edges", []), c.get("confidence_counts", []), "confidence")


def entropy_table(payload: dict) -> Table:
    c = payload.get("confidence") or {}
    return _histogram_table(c.get("entropy_edges", []), c.get("entropy_counts", []), "entropy")


def faithfulness_table(rows: list[dict]) -> Table:
    header = [
        "dimension",
        "value",
        "acceptable",
        "rated",
        "share",
        "ci_low",
        "ci_high",
        "more_ratings_needed",
    ]
    return header, [[r["dimension"], r["value"], r["acceptable"], r["n"], _r(r["share"]), _r(r["low"]), _r(r["high"]),
                     r.get("more_needed", "")] for r in rows]  # fmt: skip


def confusion_table(payload: dict) -> Table:
    human_llm = (payload.get("agreement") or {}).get("human_llm") or {}
    labels = human_llm.get("labels", [])
    return ["human \\ llm", *labels], [
        [label, *row] for label, row in zip(labels, human_llm.get("matrix", []), strict=False)
    ]


def per_label_table(payload: dict) -> Table:
    human_llm = (payload.get("agreement") or {}).get("human_llm") or {}
    return ["label", "llm_precision", "llm_recall", "f1", "human_support"], [
        [s["label"], _r(s["precision"]), _r(s["recall"]), _r(s["f1"]), s["support"]]
        for s in human_llm.get("per_label", [])
    ]


def agreement_over_time_table(payload: dict) -> Table:
    rows = (payload.get("agreement") or {}).get("over_time", [])
    return ["period", "answers", "agreement_with_llm", "kappa_with_llm"], [
        [r["period"], r["n"], _r(r["agreement"]), _r(r["kappa"])] for r in rows
    ]


def rater_pairs_table(agreement: dict) -> Table:
    return ["rater_a", "rater_b", "shared_items", "cohen_kappa"], [
        [p["a"], p["b"], p["n"], _r(p["kappa"])] for p in (agreement or {}).get("pairs", [])
    ]


def annotator_table(payload: dict) -> Table:
    header = [
        "annotator",
        "answers",
        "ratings",
        "flags",
        "agree_with_llm",
        "agree_with_final",
        "median_seconds",
    ]
    return header, [[a["name"], a["answers"], a["ratings"], a["flags"], _r(a["agree_llm"]), _r(a["agree_final"]),
                     _r(a["median_seconds"], 1)] for a in payload.get("annotators", [])]  # fmt: skip


DIVERSITY_COLUMNS = [
    "n", "vocabulary", "distinct_1", "distinct_2", "distinct_3", "self_bleu", "self_bleu_sample",
    "cosine_distance", "vendi", "vendi_sample", "near_duplicate_rate", "embedded",
]  # fmt: skip


def diversity_table(payload: dict) -> Table:
    return ["group", *DIVERSITY_COLUMNS], [
        [g["group"], *(_r(g.get(c)) for c in DIVERSITY_COLUMNS)] for g in payload.get("diversity", [])
    ]


def benchmark_table(results: list[dict]) -> Table:
    return ["training_set", "model", "n_train", "n_test", "accuracy", "macro_f1", "note"], [
        [
            r["training_set"],
            r["model"],
            r["n_train"],
            r["n_test"],
            _r(r["accuracy"]),
            _r(r["macro_f1"]),
            r["note"],
        ]
        for r in results
    ]


def leaderboard_table(payload: dict) -> Table:
    board = (payload.get("pairwise") or {}).get("leaderboard", [])
    header = [
        "model",
        "games",
        "win_rate",
        "elo",
        "elo_low",
        "elo_high",
        "elo_in_recorded_order",
        "bradley_terry",
        "bt_low",
        "bt_high",
    ]
    return header, [[r["player"], r["games"], _r(r["win_rate"]), _r(r["elo"], 2), _r(r["elo_low"], 2), _r(r["elo_high"], 2),
                     _r(r.get("elo_in_order"), 2),
                     _r(r["bt"], 2), _r(r["bt_low"], 2), _r(r["bt_high"], 2)] for r in board]  # fmt: skip


# ---------------------------------------------------------------- charts


def label_chart(payload: dict) -> charts.Chart:
    labels = payload.get("labels") or {}
    return charts.grouped_bar_chart(
        labels.get("names", []),
        {
            "final label": labels.get("final", []),
            "LLM label": labels.get("llm", []),
            "human answers": labels.get("human", []),
        },
        title="Label distribution",
    )


def confidence_chart(payload: dict) -> charts.Chart:
    c = payload.get("confidence") or {}
    return charts.histogram(
        c.get("confidence_edges", [0, 1]), c.get("confidence_counts", []), title="LLM confidence"
    )


def entropy_chart(payload: dict) -> charts.Chart:
    c = payload.get("confidence") or {}
    return charts.histogram(c.get("entropy_edges", [0, 1]), c.get("entropy_counts", []), title="Entropy of the label distribution",
                            colour=charts.PALETTE[4])  # fmt: skip


def faithfulness_chart(rows: list[dict]) -> charts.Chart:
    shown = [r for r in rows if r["n"]][:14]
    return charts.interval_chart(
        [(f"{r['value']}" if r["dimension"] in ("all", "label") else f"{r['dimension']} {r['value']}",
          100 * r["share"], 100 * r["low"], 100 * r["high"]) for r in shown],
        title="Acceptable share (%), 95% Wilson interval", x_min=0, x_max=100,
    )  # fmt: skip


def confusion_chart(payload: dict) -> charts.Chart:
    human_llm = (payload.get("agreement") or {}).get("human_llm") or {}
    labels = human_llm.get("labels", [])
    return charts.heatmap(human_llm.get("matrix", []), labels, labels, title="Human vs LLM", row_title="human ↓",
                          column_title="LLM label →")  # fmt: skip


def agreement_over_time_chart(payload: dict) -> charts.Chart:
    rows = (payload.get("agreement") or {}).get("over_time", [])
    return charts.line_chart(
        [r["period"] for r in rows],
        {"agreement with LLM": [r["agreement"] for r in rows], "Cohen's κ": [r["kappa"] for r in rows]},
        title="Human–LLM agreement over time", y_min=min([0.0] + [r["kappa"] for r in rows if r["kappa"] is not None]), y_max=1.0,
    )  # fmt: skip


def diversity_chart(payload: dict) -> charts.Chart:
    groups = payload.get("diversity", [])
    return charts.grouped_bar_chart(
        [g["group"] for g in groups],
        {"distinct-2": [g["distinct_2"] for g in groups], "Self-BLEU": [g["self_bleu"] for g in groups],
         "cosine distance": [g["cosine_distance"] for g in groups], "near-dup rate": [g["near_duplicate_rate"] for g in groups]},
        title="Diversity side by side", y_max=1.0, width=760,
    )  # fmt: skip


def benchmark_chart(results: list[dict]) -> charts.Chart:
    sets = list(dict.fromkeys(r["training_set"] for r in results))
    models = list(dict.fromkeys(r["model"] for r in results))
    value = {(r["training_set"], r["model"]): r["macro_f1"] for r in results}
    return charts.grouped_bar_chart(sets, {m: [value.get((s, m)) for s in sets] for m in models}, title="Macro-F1 on the held-out set",
                                    y_max=1.0, width=760)  # fmt: skip


def elo_chart(payload: dict) -> charts.Chart:
    board = (payload.get("pairwise") or {}).get("leaderboard", [])
    return charts.interval_chart(
        [(r["player"], r["elo"], r["elo_low"], r["elo_high"]) for r in board], title="Elo (95% bootstrap)"
    )


def bradley_terry_chart(payload: dict) -> charts.Chart:
    board = sorted((payload.get("pairwise") or {}).get("leaderboard", []), key=lambda r: -r["bt"])
    return charts.interval_chart([(r["player"], r["bt"], r["bt_low"], r["bt_high"]) for r in board],
                                 title="Bradley-Terry on the Elo scale (95% bootstrap)")  # fmt: skip
