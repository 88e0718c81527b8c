"""The shell command the README and the snapshot page document for downloading an export through the API.

A Parquet or Hugging Face export that no worker has written yet answers 202 with a JSON body: `curl -o` alone
saves that body as the archive and exits 0. The command writes to `<file>.part`, asks again while the answer is
202 (every 2 s, the API's Retry-After; for at most 10 minutes, so a stopped worker does not hang it), stops on any error (`--fail`: 4xx/5xx exit non-zero), and renames the
file only once the answer is 200, so the archive is never a JSON body. One function, so the README's text and
the page's are the same command (tests/evaluation/api/test_download_command.py runs it against a worker).
"""

from __future__ import annotations

README_URL = "http://127.0.0.1:8000/api/projects/1/snapshots/1/download/hf/"


def download_command(url: str, filename: str = "data.zip") -> str:
    return (
        f"url={url}; tries=0\n"
        f'while code=$(curl -sS -L --fail -H "Authorization: Bearer $TOKEN" -o {filename}.part '
        f'-w \'%{{http_code}}\' "$url") && [ "$code" = 202 ] && [ $((tries=tries+1)) -le 300 ]; do sleep 2; done\n'
        f'[ "$code" = 200 ] && mv {filename}.part {filename} || echo "download failed (HTTP $code)" >&2'
    )
