"""Test support that ships with the app because benchmark commands use it too. `openai_server` is a local
OpenAI-compatible HTTP server (standard library only) that the real client talks to over real HTTP: chat
completions with `n`, logprobs, `response_format`, and scheduled faults (429 with Retry-After, 500, slow,
malformed, reset, refusal, empty, garbage); tests start it through a fixture, `bench_generation` with a
fixed latency.
"""
