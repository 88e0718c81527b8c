"""Getting datasets out and in. `writers` exports a snapshot as JSONL, CSV (spreadsheet-safe), Parquet, a
Hugging Face datasets folder (zip, with a dataset card) or Label Studio JSON, streamed or written once to a
file that is reused; `labelstudio` imports a Label Studio JSON export into a project, all or nothing, in a
worker. The pages and export jobs that use them are in evaluation.curation.
"""
