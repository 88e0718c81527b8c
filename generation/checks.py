"""System checks of the endpoint security settings (run by `manage.py check`, runserver and migrate): a value
the code would quietly ignore is reported instead."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from generation.endpoint_keys import NEVER_KEY_VARIABLES


@register(Tags.security)
def endpoint_security_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name in settings.LLM_KEY_ENV_ALLOWED:
        if name in NEVER_KEY_VARIABLES:
            messages.append(
                Warning(
                    f"LLM_KEY_ENV_ALLOWED lists {name}, which may never hold an endpoint key: it is ignored.",
                    id="generation.W001",
                )
            )
    for entry in settings.LLM_ALLOWED_HOSTS:
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                messages.append(
                    Error(
                        f"LLM_ALLOWED_HOSTS entry {entry!r} is not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8).",
                        id="generation.E001",
                    )
                )
    return messages
