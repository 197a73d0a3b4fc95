"""``vsa <service> --print-config``: effective settings, secrets masked, and where each came from.

Sources, as ``load_settings`` applies them (highest first): ``flag`` (a command-line override),
``env`` (an environment variable), ``config file`` (the ``--config`` YAML) and ``default``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from vsa.runtime.redact import mask_secrets
from vsa.runtime.settings import read_yaml


def _overridden(path: tuple[str, ...], overrides: dict[str, Any]) -> bool:
    """Whether a flag set this key: a nested override (``--topic-prefix`` gives
    ``{"topics": {"prefix": ...}}``) sets only the keys it names, a value sets all below it."""
    node: Any = overrides
    for part in path:
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _source(path: tuple[str, ...], env_name: str, overrides: dict[str, Any], yaml: Any) -> str:
    if _overridden(path, overrides):
        return "flag"
    environ = {k.upper() for k in os.environ}
    if env_name in environ or any(k.startswith(env_name + "__") for k in environ):
        return "env"
    node = yaml
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return "default"
        node = node[part]
    return "config file"


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return mask_secrets(str(value))


def config_lines(
    settings: BaseModel, yaml_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> list[str]:
    """``key = value  (source)`` for every leaf setting; nested settings with their own
    variables (kafka: ``KAFKA_*``) use those."""
    yaml = read_yaml(yaml_file) if yaml_file is not None else {}
    lines: list[str] = []

    def walk(model: BaseModel, path: tuple[str, ...], env_prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key_path, env_name = (*path, name), env_prefix + name.upper()
            if isinstance(value, BaseModel) and not isinstance(value, SecretStr):
                own = value.model_config.get("env_prefix")
                walk(value, key_path, str(own).upper() if own else env_name + "__")
                continue
            source = _source(key_path, env_name, overrides or {}, yaml)
            lines.append(f"{'.'.join(key_path)} = {_shown(value)}  ({source})")

    walk(settings, (), str(settings.model_config.get("env_prefix", "")).upper())
    return lines


def print_config(
    settings: BaseModel, yaml_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> int:
    """Print :func:`config_lines` on stdout; returns the exit status 0."""
    print("\n".join(config_lines(settings, yaml_file, overrides)))
    return 0
