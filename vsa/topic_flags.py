"""The ``--topic-prefix`` flag of every command that reads or writes the pipeline's topics, and
old flag spellings that still work with a note on stderr.

One meaning per flag name: ``--topic-prefix`` is always the prefix of topic names (what
``vsa topics create --topic-prefix P`` created); ``vsa produce --camera-prefix`` is the camera_id
prefix. Imports nothing heavy: it runs every time ``vsa`` builds its parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


class DeprecatedSpelling(argparse.Action):
    """An old flag spelling: stores its value under the new flag's ``dest`` and says on stderr
    (once per use) which flag to use instead.

    ``use`` names the new flag; ``note`` is added after it (e.g. what the old name meant)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.use: str = kwargs.pop("use")
        self.note: str = kwargs.pop("note", "")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        note = f" ({self.note})" if self.note else ""
        line = f"{parser.prog}: {option_string} is deprecated; use {self.use}{note}"
        print(line, file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_topic_prefix(parser: argparse.ArgumentParser, env_var: str) -> None:
    """Add ``--topic-prefix`` (dest ``topic_prefix``, None when not given); ``env_var`` is the
    variable that sets it otherwise, named in the help."""
    parser.add_argument(
        "--topic-prefix",
        default=None,
        metavar="PREFIX",
        help=f"Topic name prefix, as given to 'vsa topics create --topic-prefix' (default: "
        f"{env_var}, else none).",
    )


def topic_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings overrides for ``--topic-prefix``: only the prefix of ``topics``, so topic names
    set in the environment or the config file stay as they are."""
    prefix = getattr(args, "topic_prefix", None)
    return {"topics": {"prefix": prefix}} if prefix is not None else {}
