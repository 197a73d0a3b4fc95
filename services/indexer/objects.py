"""Object documents for "find objects that look like this one" (``index_objects``).

The indexer reads the keyframes topic too: each keyframe names its frame by reference and lists
its tracked objects with their boxes. Their frames are read back from the frames topic (the
captioner's :class:`~vsa.services.captioner.frames.FrameFetcher`), decoded once, and the boxes
of the objects matched on the frame are embedded by the appearance embedder
(:mod:`vsa.services.appearance`, batched; ONNX Runtime on the CPU, torch on a GPU) into one
document each in the objects index (:func:`.mapping.object_documents`).

A keyframe whose frame is no longer in Kafka (retention) gets no object documents; that is
logged (``object_frames_missing``), not dead-lettered: nothing is wrong with the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import simplejpeg
from confluent_kafka import Message

from vsa.runtime.logs import event
from vsa.schemas import Keyframe

from .mapping import indexed_objects, object_documents
from .settings import IndexerSettings
from .store import Action

log = logging.getLogger("vsa.indexer.objects")


class KeyframeObjects:
    """Keyframes to bulk actions of object documents; the frame fetcher and the embedder are
    built on first use (an indexer with ``index_objects`` off never loads them)."""

    def __init__(self, settings: IndexerSettings, fetcher: Any = None, embedder: Any = None):
        self.settings = settings
        self._fetcher = fetcher
        self._embedder = embedder

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from vsa.services.appearance.embedder import build_appearance_embedder

            self._embedder = build_appearance_embedder(self.settings.appearance)
            event(log, "appearance_embedder_loaded", backend=self._embedder.name)
        return self._embedder

    @property
    def fetcher(self) -> Any:
        if self._fetcher is None:
            from vsa.services.captioner.frames import FrameFetcher

            group = self.settings.group_id or "vsa-indexer"
            self._fetcher = FrameFetcher(self.settings.kafka, f"{group}-frames")
        return self._fetcher

    def actions(self, keyframes: Sequence[tuple[Message, Keyframe]]) -> list[tuple[int, Action]]:
        """``(position of the keyframe in keyframes, action)`` for every object document."""
        wanted = [(pos, kf) for pos, (_, kf) in enumerate(keyframes) if indexed_objects(kf)]
        if not wanted:
            return []
        jpegs = self.fetcher.fetch([kf.frame for _, kf in wanted])
        index = self.settings.index.objects_index
        out: list[tuple[int, Action]] = []
        missing = 0
        for pos, keyframe in wanted:
            ref = keyframe.frame
            jpeg = jpegs.get((ref.topic, ref.partition, ref.offset))
            if jpeg is None:
                missing += 1
                continue
            vectors = self.embed(keyframe, jpeg)
            for doc_id, source in object_documents(keyframe, vectors):
                out.append((pos, ({"index": {"_index": index, "_id": doc_id}}, source)))
        if missing:
            event(log, "object_frames_missing", logging.WARNING, keyframes=missing)
        return out

    def embed(self, keyframe: Keyframe, jpeg: bytes) -> Any:
        """Appearance vectors of the keyframe's indexed objects, on its decoded frame."""
        image = np.asarray(simplejpeg.decode_jpeg(jpeg, colorspace="RGB"))
        boxes = np.array([obj.xyxy for obj in indexed_objects(keyframe)], np.float64)
        return self.embedder.embed(image, boxes)

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
