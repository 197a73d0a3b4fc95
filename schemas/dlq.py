"""The dead-letter topics ``dlq.<service>``: the original key and bytes, the error in headers.

The value is the failed record's value unchanged and the key its key; the producer should copy
the record's own headers too (a frame's ``vsa-*`` metadata) and add these:

==============================  ==================================================
``vsa-dlq-schema-version``      ``1``
``vsa-dlq-service``             the service that gave up on the record
``vsa-dlq-error-class``         exception class name, e.g. ``SchemaError``
``vsa-dlq-error-message``       the error text, at most 1000 characters
``vsa-dlq-source-topic``        where the record came from
``vsa-dlq-source-partition``    its partition
``vsa-dlq-source-offset``       its offset
``vsa-dlq-failed-ts``           when it failed, UNIX seconds
==============================  ==================================================
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, field_validator
from typing_extensions import Self

from vsa.runtime.redact import mask_secrets

from .codec import HeaderMessage
from .common import Identifier, KafkaTopicName, NonNegInt64, UnixTs

#: Longest error message kept, characters; longer ones are cut and end with an ellipsis.
MAX_ERROR_MESSAGE_CHARS = 1000


def truncate_message(text: str, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the last being an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class DeadLetter(HeaderMessage):
    """Why a record went to ``dlq.<service>`` (carried in the dead letter's headers)."""

    LOGICAL_TOPIC: ClassVar[str] = "dlq"
    HEADER_PREFIX: ClassVar[str] = "vsa-dlq-"

    service: Identifier = Field(description="The service that failed on the record.")
    error_class: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Exception class name, e.g. 'SchemaError'."
    )
    error_message: Annotated[str, StringConstraints(max_length=MAX_ERROR_MESSAGE_CHARS)] = Field(
        description="Error text; longer input is truncated to 1000 characters, not refused."
    )
    source_topic: KafkaTopicName = Field(description="Topic the failed record was read from.")
    source_partition: int = Field(ge=0, le=2**31 - 1, description="Its partition.")
    source_offset: NonNegInt64 = Field(description="Its offset.")
    failed_ts: UnixTs = Field(description="When the service gave up, UNIX seconds.")

    @field_validator("error_message", mode="before")
    @classmethod
    def _truncate(cls, value: object) -> object:
        # No credential in a dead-letter header: an error text may quote a URL with user:password.
        return truncate_message(mask_secrets(value)) if isinstance(value, str) else value

    @classmethod
    def for_exception(
        cls,
        service: str,
        exc: BaseException,
        *,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        failed_ts: float,
    ) -> Self:
        """The dead-letter metadata for ``exc`` raised while handling the given record."""
        return cls(
            service=service,
            error_class=type(exc).__name__,
            error_message=str(exc) or type(exc).__name__,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            failed_ts=failed_ts,
        )
