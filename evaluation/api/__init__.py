"""The token API for ML engineers (mounted at /api/, namespace "api"): `views` manages per-user API tokens
(created and revoked on a page, sent as a Bearer header) and serves the projects, their ready snapshots and
snapshot downloads, or starts an export job for the large formats; `urls` routes them. Token storage and
checking are in evaluation.curation.services, the files themselves in evaluation.export.
"""
