"""Generation workflows, one module per feature, as keyword-only functions that views, tasks and commands
call: configs (versions, checks, the preview), planning (what each item's prompt is built from: conditions,
demos, random words, request parameters), runs (start, cancel, resume, the execution a worker performs,
stalls, rate), rounds (condition statistics and the next round), proposals (LLM-proposed condition values),
outputs (the outputs viewer's filters) and endpoints (the endpoint mirrored from the environment). Import
from the module that holds a name (`from generation.services.runs import run_start`): this package
re-exports nothing. Runs enqueue generation.tasks on commit; the tasks import the service they call inside
their bodies, so imports go one way."""
