"""Pairwise preferences: which of two responses is better. `files` reads judged pairs from files (generic
JSON/JSONL/CSV, the PandaLM test set); `pairs` makes pairs from two generation runs or configs; `services`
imports pairs, builds the Elo and Bradley-Terry leaderboards with rater agreement and records the choices of
the one-pair-at-a-time review; `judges` runs LLM-as-judge (ratings and pairs in both orders) and
`offline_judge` its no-LLM stand-in; `views`/`urls`/`forms` are the preferences page, import, pairs from
generation, the review page and judge runs.
"""
