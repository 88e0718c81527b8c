"""Curation: from labelled samples to immutable curated snapshots. `filters` is the pure filter core
(duplicates, judge score, confidence, consistency, flags, length, user patterns run on RE2); `snapshots`
loads the rows, applies the filters and builds, lists and diffs snapshots; `student` and `label_issues` are
label refinement (a student model, the FreeAL clean/noisy split, likely label errors sent to review);
`services` runs refinement, snapshot builds and export jobs and manages API tokens; `views`/`urls`/`forms` are
the curation pages (live filter counts, snapshots, exports, label issues, the Label Studio upload).
"""
