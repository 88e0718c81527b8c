"""Other annotation tools' file formats, in and out, as plain Python (no Django).

`items` is the neutral shape every reader produces and every writer consumes (a text with its fields, several
human answers each with its annotator, LLM predictions with their full distribution); `labelstudio`,
`argilla`, `prodigy` and `doccano` read and write their tool's documented format. The database side (turning
items into samples, answers and LLM labels, all or nothing) is evaluation.export.labelstudio; the snapshot
writers are in evaluation.export.writers.
"""
