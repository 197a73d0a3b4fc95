"""A batched constant-velocity Kalman filter over boxes, one independent filter per coordinate.

Every track's box is ``(cx, cy, w, h)`` in pixels (centre, width, height) with a velocity for
each, in pixels per second. The measurement is the box itself and the noise of each coordinate
is independent (a diagonal process and measurement noise, as in ByteTrack's filter), so the
8×8 covariance of a track splits exactly into four 2×2 blocks, one per coordinate:
``[[p_pp, p_pv], [p_pv, p_vv]]`` (position variance px², position-velocity covariance px²/s,
velocity variance px²/s²). Storing the three numbers of each block instead of the 8×8 matrix
keeps a track's filter at 20 floats and lets predict and update run as a few dozen numpy
operations for all tracks at once, whatever their number.

A filter state is one row of :data:`N_KALMAN_COLS` float64 columns::

    0:4 pos (cx, cy, w, h)   4:8 vel   8:12 p_pp   12:16 p_pv   16:20 p_vv

Prediction uses the real elapsed time ``dt`` (seconds) with the continuous white-noise
acceleration model plus a position random walk:

    Q = accel² · [[dt³/3, dt²/2], [dt²/2, dt]] + pos² · [[dt, 0], [0, 0]]

with ``accel`` and ``pos`` proportional to the box size (width for x and w, height for y, h).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from .config import TrackerConfig

F64 = npt.NDArray[np.float64]

POS: Final = slice(0, 4)
VEL: Final = slice(4, 8)
P_PP: Final = slice(8, 12)
P_PV: Final = slice(12, 16)
P_VV: Final = slice(16, 20)
N_KALMAN_COLS: Final = 20

#: Which box size scales the noise of each coordinate (cx, cy, w, h): width, height, width, height.
_SIZE_OF = np.array([2, 3, 2, 3])


def _size_squared(pos: F64, min_box_px: float) -> F64:
    """Per-coordinate squared size (n, 4) that noise levels are fractions of."""
    size = np.maximum(pos.take(_SIZE_OF, axis=1), min_box_px)
    squared: F64 = size * size
    return squared


def initiate(boxes_cxcywh: F64, config: TrackerConfig) -> F64:
    """Filter rows (n, 20) of new tracks from their first boxes (n, 4): zero velocity."""
    s2 = _size_squared(boxes_cxcywh, config.min_box_px)
    kf = np.zeros((boxes_cxcywh.shape[0], N_KALMAN_COLS))
    kf[:, POS] = boxes_cxcywh
    kf[:, P_PP] = config.init_pos_noise**2 * s2
    kf[:, P_VV] = config.init_vel_noise**2 * s2
    return kf


def predict(kf: F64, dt: float, coasting: npt.NDArray[np.bool_], config: TrackerConfig) -> F64:
    """New filter rows (n, 20), every state advanced by ``dt`` seconds (>= 0).

    ``coasting`` (n,) marks tracks without a match on the previous frame: their size velocity is
    zeroed first (as ByteTrack does), so a box cannot balloon or collapse while nobody sees it.
    The mean moves by ``[[1, dt], [0, 1]]`` and each covariance block ``P`` becomes
    ``F P Fᵀ + Q``, which for the three stored numbers ``(p_pp, p_pv, p_vv)`` is the linear map
    ``[[1, 2dt, dt²], [0, 1, dt], [0, 0, 1]]`` plus Q: two small matrix products for all tracks.
    """
    out = kf.copy()
    if coasting.any():
        out[coasting, 6:8] = 0.0
    if dt <= 0:
        return out
    n = out.shape[0]
    s2 = _size_squared(out, config.min_box_px)
    acc2, pos2 = config.accel_noise**2, config.pos_noise**2
    motion = np.array([[1.0, dt], [0.0, 1.0]])
    out[:, :8] = np.matmul(motion, out[:, :8].reshape(n, 2, 4)).reshape(n, 8)
    np.maximum(out[:, 2:4], config.min_box_px, out=out[:, 2:4])
    spread = np.array([[1.0, 2.0 * dt, dt * dt], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    noise = np.array([[pos2 * dt + acc2 * dt**3 / 3.0], [acc2 * dt * dt / 2.0], [acc2 * dt]])
    cov = np.matmul(spread, out[:, 8:20].reshape(n, 3, 4)) + noise * s2[:, None, :]
    out[:, 8:20] = cov.reshape(n, 12)
    return out


def update(kf: F64, measured_cxcywh: F64, config: TrackerConfig) -> F64:
    """Corrected filter rows (k, 20) from predicted rows (k, 20) and one box each (k, 4)."""
    pos, vel = kf[:, POS], kf[:, VEL]
    pp, pv, vv = kf[:, P_PP], kf[:, P_PV], kf[:, P_VV]
    r = config.meas_noise**2 * _size_squared(kf, config.min_box_px)
    inv_s = 1.0 / (pp + r)
    gain_p = pp * inv_s
    gain_v = pv * inv_s
    innovation = measured_cxcywh - pos
    keep = r * inv_s  # 1 - gain_p, computed without cancellation
    return np.concatenate(
        [
            pos + gain_p * innovation,
            vel + gain_v * innovation,
            pp * keep,
            pv * keep,
            vv - gain_v * pv,
        ],
        axis=1,
    )
