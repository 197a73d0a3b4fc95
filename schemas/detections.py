"""The detections topic (detector -> tracker) and the tracks topic (tracker -> users, captioner)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator
from typing_extensions import Self

from .codec import FrameMessage
from .common import ClassId, ClassName, Dimension, Finite, Score, TrackId, VsaModel, Xyxy

#: Most boxes one message may carry; a detector's top-k is far below this.
MAX_BOXES = 10_000

TimingName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Millis = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
TrackState = Literal["tentative", "confirmed", "lost"]


class Detection(VsaModel):
    """One detected object in one frame."""

    xyxy: Xyxy
    class_id: ClassId = Field(description="Index of the class in the model's class list.")
    class_name: ClassName = Field(description="Name of the class, e.g. 'person', 'car'.")
    score: Score = Field(description="Detection confidence, 0..1.")


#: Longest base64 text of a message's appearance vectors (within the 1 MiB message limit).
MAX_APPEARANCE_B64 = 900_000


class AppearanceVectors(VsaModel):
    """Crop embeddings of a message's boxes (the detector's ``appearance`` option): one unit
    vector per box, in the order of ``boxes``, for the tracker's re-attachment by appearance."""

    model: ModelId = Field(description="The embedder, e.g. 'mobilenetv2-imagenet@224x224'.")
    dims: int = Field(ge=1, le=4096, description="Components per vector.")
    float16_b64: str = Field(
        max_length=MAX_APPEARANCE_B64,
        pattern=r"^[A-Za-z0-9+/]*={0,2}$",
        description="Base64 of the (boxes, dims) float16 little-endian array, row-major: "
        "row i is the vector of boxes[i] (2 * dims bytes per box).",
    )

    def byte_count(self) -> int:
        """Bytes the base64 text decodes to."""
        text = self.float16_b64
        return len(text) * 3 // 4 - text[-2:].count("=") if text else 0


class Detections(FrameMessage):
    """Everything the detector found in one frame, with the frame reference and its timings."""

    LOGICAL_TOPIC: ClassVar[str] = "detections"

    width: Dimension = Field(description="Width of the original image, pixels.")
    height: Dimension = Field(description="Height of the original image, pixels.")
    model_id: ModelId = Field(description="Which model produced the boxes (name, version, path).")
    boxes: list[Detection] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Detections after NMS, in pixels of the original image; may be empty.",
    )
    timings: dict[TimingName, Millis] = Field(
        default_factory=dict,
        max_length=32,
        description="Time spent per stage for this frame, milliseconds (>= 0): e.g. decode, "
        "preprocess, infer, postprocess. A batched stage reports the batch's time per frame.",
    )
    appearance: AppearanceVectors | None = Field(
        None,
        description="Crop embeddings of the boxes, one row per box (the detector's appearance "
        "option); absent when off.",
    )

    @model_validator(mode="after")
    def _one_vector_per_box(self) -> Self:
        vectors = self.appearance
        if vectors is not None and vectors.byte_count() != 2 * vectors.dims * len(self.boxes):
            raise ValueError(
                f"appearance holds {vectors.byte_count()} bytes, not {len(self.boxes)} boxes x "
                f"{vectors.dims} float16 components ({2 * vectors.dims * len(self.boxes)} bytes)"
            )
        return self


class TrackedObject(VsaModel):
    """One object the tracker follows, as seen in one frame."""

    track_id: TrackId = Field(
        description="Per-camera track id, >= 1, stable across frames; given when the track is "
        "confirmed, so ids count objects that lasted."
    )
    xyxy: Xyxy
    class_id: ClassId = Field(description="Index of the class in the detector's class list.")
    class_name: ClassName = Field(description="Name of the class, e.g. 'person'.")
    score: Score = Field(description="Confidence of the latest matched detection, 0..1.")
    velocity_px_s: tuple[Finite, Finite] = Field(
        description="Estimated velocity (vx, vy) of the box centre, pixels per second; "
        "x to the right, y down."
    )
    age_frames: int = Field(
        ge=0,
        le=2**63 - 1,
        description="Frames since the track was created; 0 on the frame that created it.",
    )
    state: TrackState = Field(
        description="'confirmed' (matched on this frame) or 'lost' while it coasts on its "
        "prediction without a matched detection. The tracker publishes confirmed tracks only; "
        "'tentative' (not yet confirmed) is found only in messages of older trackers."
    )


def check_unique_track_ids(objects: list[TrackedObject], field: str) -> None:
    """Raise ValueError when two objects of one frame share a track id."""
    seen: set[int] = set()
    for index, obj in enumerate(objects):
        if obj.track_id in seen:
            raise ValueError(f"{field}[{index}]: track_id {obj.track_id} appears twice")
        seen.add(obj.track_id)


class Tracks(FrameMessage):
    """The tracker's view of one frame: every live track with its box and velocity."""

    LOGICAL_TOPIC: ClassVar[str] = "tracks"

    tracks: list[TrackedObject] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Tracked objects in this frame, each track_id at most once; may be empty.",
    )

    @model_validator(mode="after")
    def _unique_tracks(self) -> Self:
        check_unique_track_ids(self.tracks, "tracks")
        return self
