"""The downstream benchmark: does curation pay off for a model trained on the data? `downstream` is the pure
core (train logistic regression on embeddings and on TF-IDF, score it on a held-out set, read a test file);
`services` assembles the training sets (raw LLM labels, curated final labels, human-verified only, recent
snapshots) and the held-out human-labelled test set, and runs it in a worker; `views`/`urls`/`forms` are the
benchmark page, starting a run and a run's progress.
"""
