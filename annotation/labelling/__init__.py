"""LLM labelling: every sample gets a label distribution from an LLM, or from the offline labeller when no
endpoint is configured. The pure cores build the labelling prompt and turn answers into distributions
(`distributions`), call the shared LLM client per method (`llm`) or label by embedding similarity (`offline`);
`services` records labels, imports labelled rows and runs labelling runs (resumable, demos from human-verified
items, a signals run when done); `views`/`urls` are the lead's labelling pages and `charts` their histograms.
"""
