"""`{% rounds_timeline run=… config=… as rounds %}`: the automatic-rounds timeline for the partial
generation/_rounds_timeline.html, so the pages that include it need no view change. The run page passes
its run; the config page its config (whatever else those names hold in a page's context is ignored)."""

from __future__ import annotations

from django import template

from generation.models import GenerationConfig, GenerationRun
from generation.services.rounds_loop import TimelineRound
from generation.services.rounds_loop import rounds_timeline as timeline_of

register = template.Library()


@register.simple_tag
def rounds_timeline(run=None, config=None) -> list[TimelineRound]:
    if isinstance(run, GenerationRun):
        return timeline_of(run=run)
    if isinstance(config, GenerationConfig):
        return timeline_of(config=config)
    return []
