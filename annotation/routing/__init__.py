"""Routing: which samples humans review, within the lead's budget. The pure cores are the selection strategies
(`selection`), the per-sample trust signals (`sample_signals`), the learned router that predicts where the LLM
is wrong (`router`) and the batch planner (`plan`); `signals` runs and stores the signals of a project,
`services` holds the routing policy, its preview, routing the next batch and the hook the review queue calls
after every answer; `views`/`urls` are the lead's routing policy and routed-items pages.
"""
