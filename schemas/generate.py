"""Write (or check) the JSON Schema files of the topic models: ``schemas/json/<topic>.schema.json``.

Usage::

    python -m vsa.schemas.generate            # rewrite the files
    python -m vsa.schemas.generate --check    # exit 1 and list stale, missing or orphan files

The files are generated from the pydantic models (validation mode), with sorted keys, two-space
indent and a trailing newline, so a diff shows exactly what a model change did. The directory
belongs to the generator: a ``*.schema.json`` there that no topic produces is an orphan; writing
removes it and checking reports it. The output depends on the pydantic version that renders it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .registry import TOPIC_MODELS

#: Where the committed schema files live (inside the package, shipped as package data).
SCHEMA_DIR = Path(__file__).resolve().parent / "json"

SCHEMA_SUFFIX = ".schema.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ENCODINGS = {
    "frames": "Kafka value: raw JPEG bytes; this schema describes the vsa-* headers "
    "(header name = 'vsa-' + field name with '-' for '_', UTF-8 text values).",
    "dlq": "Kafka value: the failed record's original bytes; this schema describes the "
    "vsa-dlq-* headers (header name = 'vsa-dlq-' + field name with '-' for '_').",
    "captions": "Kafka value: uint32_be(len(J)) || J || T, where J is UTF-8 JSON described by "
    "this schema (no thumbnail_jpeg key) and T the raw JPEG thumbnail (<= 32 KiB, may be empty).",
}
_JSON_ENCODING = "Kafka value: compact UTF-8 JSON described by this schema."


def schema_id(topic: str) -> str:
    """The ``$id`` of a topic's schema."""
    return f"urn:vsa:schema:{topic}"


def topic_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema of one logical topic, with ``$id``, ``$schema``, title and wire notes."""
    model = TOPIC_MODELS[topic]
    schema = model.model_json_schema(mode="validation")
    schema["$id"] = schema_id(topic)
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["title"] = model.__name__
    schema["x-vsa-topic"] = topic
    schema["x-vsa-encoding"] = _ENCODINGS.get(topic, _JSON_ENCODING)
    return schema


def render_json_schemas() -> dict[str, str]:
    """File name -> file text for every topic."""
    return {
        f"{topic}{SCHEMA_SUFFIX}": json.dumps(topic_schema(topic), indent=2, sort_keys=True) + "\n"
        for topic in TOPIC_MODELS
    }


def write_json_schemas(out_dir: Path | str = SCHEMA_DIR) -> list[Path]:
    """Write every topic's schema file into ``out_dir`` and remove orphan ``*.schema.json``.

    Returns the paths written, in topic order. Files whose content is unchanged are rewritten
    byte-identically, so timestamps change but diffs do not.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_json_schemas()
    for orphan in directory.glob(f"*{SCHEMA_SUFFIX}"):
        if orphan.name not in rendered:
            orphan.unlink()
    written: list[Path] = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def check_json_schemas(directory: Path | str = SCHEMA_DIR) -> list[str]:
    """Names of the schema files in ``directory`` that are stale, missing or orphans (sorted).

    An empty list means the committed files match the models.
    """
    folder = Path(directory)
    rendered = render_json_schemas()
    problems: list[str] = []
    for name, text in rendered.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    if folder.is_dir():
        problems.extend(p.name for p in folder.glob(f"*{SCHEMA_SUFFIX}") if p.name not in rendered)
    return sorted(problems)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the files, or with ``--check`` report stale ones and return 1."""
    parser = argparse.ArgumentParser(prog="python -m vsa.schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="schema directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_json_schemas(args.out)
        for name in stale:
            path = args.out / name
            state = "stale" if path.exists() else "missing"
            print(f"{state}: {path}", file=sys.stderr)
        if stale:
            print("run: python -m vsa.schemas.generate", file=sys.stderr)
            return 1
        print(f"{len(TOPIC_MODELS)} schema files up to date in {args.out}")
        return 0
    for path in write_json_schemas(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
