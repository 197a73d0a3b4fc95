"""Generate docs/settings.md, the settings reference, from the pydantic-settings models.

``python -m vsa.runtime.settings_doc`` rewrites the page; ``--check`` exits 1 when it is stale
(a unit test does the same, like the JSON Schema staleness test).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "settings.md"

#: (module, class) of every settings model a user configures, in pipeline order.
SETTINGS_CLASSES = (
    ("vsa.services.ingest.config", "IngestSettings"),
    ("vsa.services.detector.config", "DetectorSettings"),
    ("vsa.services.tracker.config", "TrackerSettings"),
    ("vsa.services.captioner.config", "CaptionerSettings"),
    ("vsa.services.indexer.settings", "IndexerSettings"),
    ("vsa.services.indexer.settings", "SearchSettings"),
    ("vsa.services.api.settings", "ApiSettings"),
    ("vsa.services.notifier.config", "NotifierSettings"),
    ("vsa.runtime.topics", "TopicsSettings"),
    ("vsa.runtime.settings", "KafkaSettings"),
    ("vsa.runtime.settings", "OpenSearchSettings"),
)
_NESTED_SHARED = ("KafkaSettings", "OpenSearchSettings")


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("pydantic.types.", "").replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    if field.default is PydanticUndefined:
        return "(required)"
    return f"`{field.default!r}`"


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                parts.append(f"{name} {value}")
    return ", ".join(parts)


def _rows(cls: type[BaseModel], key_prefix: str, env_prefix: str) -> list[str]:
    rows = []
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        key, env = key_prefix + name, env_prefix + name.upper()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in _NESTED_SHARED:
                rows.append(f"| `{key}` | see {annotation.__name__} | | | | |")
                continue
            rows.extend(_rows(annotation, key + ".", env + "__"))
            continue
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(
            f"| `{key}` | `{env}` | {_type_name(annotation)} | {_default(field)} "
            f"| {_bounds(field)} | {description} |"
        )
    return rows


def render() -> str:
    """The whole page, deterministic."""
    lines = [
        "# Settings reference",
        "",
        "Generated from the settings models by `python -m vsa.runtime.settings_doc`; do not edit.",
        "Precedence, highest first: command-line flags, environment variables, the `--config`",
        "YAML file (same keys, nested as mappings), defaults. Nested keys use `__` in variables.",
        "",
    ]
    for module, name in SETTINGS_CLASSES:
        cls = getattr(importlib.import_module(module), name)
        doc = " ".join((cls.__doc__ or "").split())
        lines += [
            f"## {name}",
            "",
            doc,
            "",
            "| key | environment | type | default | bounds | description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += _rows(cls, "", str(cls.model_config.get("env_prefix", "")))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is stale: run python -m vsa.runtime.settings_doc", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    print(DOC_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
