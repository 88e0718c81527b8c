"""Talking to LLMs, for generation and for annotation's labelling. `client` is the one client path: the
`openai` package against any OpenAI-compatible endpoint with retries that honour Retry-After, rate and
concurrency limits, token and cost accounting, and the call cache (one call, or many with per-result or
per-batch callbacks); `outbound` decides where requests may go (no private or link-local address unless the
operator allows it, the checked address pinned); `schema` validates structured output against a JSON schema
(no Django); `offline` is the generator used when no endpoint is configured, a per-label Markov chain on the
project's own texts whose samples are marked offline.
"""
