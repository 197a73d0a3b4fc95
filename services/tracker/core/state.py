"""Per-camera tracker state: every live track as one row of two matrices, plus four scalars.

A row of ``floats`` (float64, :data:`N_FLOAT_COLS` columns) holds the Kalman state and the last
match; a row of ``ints`` (int64, :data:`N_INT_COLS` columns) the id and life-cycle counters.
Only confirmed tracks have an id: a tentative track's ``TRACK_ID`` is 0 (:data:`NO_ID`) until it
is confirmed and takes the next id of the counter, so ids users see are never spent on tracks
that do not last. Rows are the confirmed tracks in ascending id order, then the tentative ones
in the order they were created. Removed tracks are dropped, so the state is as large as the
number of live tracks, whatever the camera's history.

The state is immutable: its arrays are read-only, whether made by a step or read back from
bytes, and :func:`step` returns a new state. It encodes to bytes and back exactly (see
:meth:`TrackerState.to_bytes`), which is how it goes into the tracker's Faust table.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from .binary import F4, F8, F64, I8, I64, Reader, StateFormatError, Writer
from .kalman import N_KALMAN_COLS

# Columns of TrackerState.floats: the Kalman filter row (see kalman.py), then the last match.
KALMAN: Final = slice(0, N_KALMAN_COLS)  # cx, cy, w, h (px), their rates (px/s), covariances
POS: Final = slice(0, 4)  # cx, cy, w, h in pixels
VEL: Final = slice(4, 8)  # their rates, px/s
VEL_XY: Final = slice(4, 6)  # velocity of the box centre (vx, vy), px/s
LAST_SEEN_TS: Final = 20  # capture_ts of the last matched detection, UNIX s
SCORE: Final = 21  # score of the last matched detection, 0..1
CLASS_VOTES: Final = 22  # score-weighted majority-vote counter of CLASS_ID (>= 0)
N_FLOAT_COLS: Final = 23

# Columns of TrackerState.ints.
TRACK_ID: Final = 0  # per-camera id, >= 1 once confirmed; NO_ID while tentative
FIRST_SEQ: Final = 1  # frame_seq of the frame that created the track
HITS: Final = 2  # matched frames so far
MISSES: Final = 3  # consecutive frames without a match (0: seen on the last frame)
STATUS: Final = 4  # TENTATIVE or CONFIRMED; a confirmed track with MISSES > 0 is 'lost'
CLASS_ID: Final = 5  # the track's class: majority (score-weighted) of its matched detections
N_INT_COLS: Final = 6

TENTATIVE: Final = 0
CONFIRMED: Final = 1

#: TRACK_ID of a tentative track: it has no id yet.
NO_ID: Final = 0

#: First bytes of an encoded state; the last byte is the format version: 3, tentative tracks
#: without an id (:data:`NO_ID`). Versions 2 (tentative tracks numbered like confirmed ones) and
#: 1 (also without ``seq_start_ts``) are still read: see :func:`_unnumber_tentative`. Version 4
#: is version 3 plus each track's appearance vector (float32, ``dims`` after the header); a
#: state without appearance vectors is still written as version 3, byte for byte as before.
MAGIC_V4: Final = b"VSATRK\x00\x04"
MAGIC: Final = b"VSATRK\x00\x03"
MAGIC_V2: Final = b"VSATRK\x00\x02"
MAGIC_V1: Final = b"VSATRK\x00\x01"
_HEADER = struct.Struct("<qddqI")  # last_frame_seq, last_ts, seq_start_ts, next_track_id, rows
_HEADER_V1 = struct.Struct("<qdqI")  # last_frame_seq, last_ts, next_track_id, rows
_DIMS = struct.Struct("<I")  # appearance dims (version 4)
F32 = npt.NDArray[np.float32]


def no_appearance(rows: int = 0) -> F32:
    """``(rows, 0)``: tracks without appearance vectors."""
    return np.zeros((rows, 0), np.float32)


@dataclass(frozen=True, eq=False)
class TrackerState:
    """Everything the tracker knows about one camera.

    Attributes:
        last_frame_seq: frame_seq of the last applied frame; -1 before the first.
        last_ts: capture_ts of the last applied frame, UNIX seconds (0.0 before the first).
        next_track_id: the id the next new track gets (ids start at 1 and are never reused).
        floats: ``(n, N_FLOAT_COLS)`` float64, one row per live track (columns above).
        ints: ``(n, N_INT_COLS)`` int64, same rows.
        seq_start_ts: capture_ts of the frame that began the camera's current frame_seq
            numbering (its first frame, or the frame that restarted it), UNIX seconds; 0.0
            before the first frame and in states of format version 1 (unknown).
        appearance: ``(n, dims)`` float32 unit vectors, each track's running appearance
            (:mod:`vsa.services.appearance`), zeros for a track never seen with one; ``dims``
            is 0 while the camera's detections carry none (re-attachment off).
    """

    last_frame_seq: int = -1
    last_ts: float = 0.0
    next_track_id: int = 1
    floats: F64 = field(default_factory=lambda: np.zeros((0, N_FLOAT_COLS), np.float64))
    ints: I64 = field(default_factory=lambda: np.zeros((0, N_INT_COLS), np.int64))
    seq_start_ts: float = 0.0
    appearance: F32 = field(default_factory=no_appearance)

    def __len__(self) -> int:
        return int(self.ints.shape[0])

    @property
    def track_ids(self) -> I64:
        """``(n,)`` ids of the live confirmed tracks (lost ones included), ascending."""
        ids: I64 = self.ints[:, TRACK_ID]
        confirmed: I64 = ids[ids != NO_ID]
        return confirmed

    def restarted(self) -> TrackerState:
        """The state of a camera starting over: no tracks, no frame applied yet, but the id
        counter kept, so a track id is never given twice (alert ids and downstream documents
        are keyed by it)."""
        return TrackerState(next_track_id=self.next_track_id)

    def write(self, out: Writer) -> None:
        """Append this state's encoding to ``out`` (see :meth:`to_bytes`)."""
        dims = self.appearance.shape[1]
        out.raw(MAGIC_V4 if dims else MAGIC)
        out.pack(
            _HEADER,
            self.last_frame_seq,
            self.last_ts,
            self.seq_start_ts,
            self.next_track_id,
            len(self),
        )
        if dims:
            out.pack(_DIMS, dims)
        out.array(self.floats, F8)
        out.array(self.ints, I8)
        if dims:
            out.array(self.appearance, F4)

    @classmethod
    def read(cls, src: Reader) -> TrackerState:
        """Read a state written by :meth:`write` (or by version 1 of the format, before
        ``seq_start_ts``); StateFormatError if it is not one."""
        magic = src.raw(len(MAGIC))
        dims = 0
        if magic in (MAGIC, MAGIC_V2, MAGIC_V4):
            last_seq, last_ts, start_ts, next_id, rows = src.unpack(_HEADER)
            if magic == MAGIC_V4:
                (dims,) = src.unpack(_DIMS)
        elif magic == MAGIC_V1:
            (last_seq, last_ts, next_id, rows), start_ts = src.unpack(_HEADER_V1), 0.0
        else:
            raise StateFormatError("not a tracker state of format version 1 to 4 (bad magic)")
        floats, ints = src.array_f8(rows, N_FLOAT_COLS), src.array_i8(rows, N_INT_COLS)
        appearance = src.array_f4(rows, dims) if dims else no_appearance(rows)
        if magic in (MAGIC_V1, MAGIC_V2):
            floats, ints = _unnumber_tentative(floats, ints)
        return cls(
            last_frame_seq=int(last_seq),
            last_ts=float(last_ts),
            next_track_id=int(next_id),
            floats=floats,
            ints=ints,
            seq_start_ts=float(start_ts),
            appearance=appearance,
        )

    def to_bytes(self) -> bytes:
        """Encode: magic + header (little-endian) + the raw float64 and int64 matrices.

        About ``48 + 232 · n`` bytes for n tracks (plus ``4 · dims`` per track and 8 bytes
        with appearance vectors); parsing it back with :meth:`from_bytes` and
        encoding again gives the same bytes, and the parsed state steps identically.
        """
        out = Writer()
        self.write(out)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrackerState:
        """Decode :meth:`to_bytes` output (zero-copy: the arrays are read-only views of data)."""
        src = Reader(bytes(data))
        state = cls.read(src)
        src.done()
        return state


def _unnumber_tentative(floats: F64, ints: I64) -> tuple[F64, I64]:
    """Rows of a version 1 or 2 state in today's form: tentative tracks lose the id they were
    given then (:data:`NO_ID`; they take a new one if they are confirmed) and move after the
    confirmed ones. The counter is not wound back: ids already shown are never given again."""
    tentative = ints[:, STATUS] == TENTATIVE
    if not tentative.any():
        return floats, ints
    order = np.argsort(tentative, kind="stable")
    ints = ints[order]
    ints[ints[:, STATUS] == TENTATIVE, TRACK_ID] = NO_ID
    floats = floats[order]
    floats.flags.writeable = False
    ints.flags.writeable = False
    return floats, ints
