"""The human review queue in the browser. `queue` puts samples into the queue and hands each annotator their
next item (reservations that never double-assign, expiry, the gold checks mixed in); `answers` writes human
answers (submit, skip, undo, edit, adjudication) and tells the router; `lead` is the lead's side (release,
reassign, gold items, queue overview, disagreements); `progress` is the annotator's own progress and history.
`final_labels` keeps a sample's final label in step with its answers, `stats` holds the plain-Python figures
(gold mixing, streaks, speed, agreement); `views`/`urls`/`forms` are the workbench and the lead pages.
"""
