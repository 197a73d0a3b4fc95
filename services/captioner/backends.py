"""Captioning backends behind one small interface.

- :class:`SceneCaptioner` (default): the scene describer, no model weights.
- :class:`BlipCaptioner`: BLIP image captioning (transformers ``BlipForConditionalGeneration``)
  from a local folder, batched across cameras, FP16 on CUDA, its sentence put in front of the
  scene description (which keeps the counts, colours, zones and alerts BLIP does not know).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vsa.schemas import CameraConfig, Keyframe

from .describe import U8, DescribeOptions
from .scene import SceneDescription, describe


class CaptionerError(Exception):
    """A captioning backend cannot be built (bad model folder, missing files)."""


@dataclass(frozen=True)
class CaptionInput:
    """One keyframe to caption: its (possibly downscaled) image and the camera's config."""

    keyframe: Keyframe
    image: U8 | None
    original_size: tuple[int, int] | None
    config: CameraConfig | None


class Captioner(Protocol):
    """What the service needs from a backend."""

    @property
    def name(self) -> str:
        """Captioner id written into every caption."""

    def caption(self, items: Sequence[CaptionInput]) -> list[SceneDescription]:
        """One description per input, in order."""


class SceneCaptioner:
    """Descriptions from detections, tracks, colours, zones, alerts and time of day."""

    name = "vsa-scene-v1"

    def __init__(self, options: DescribeOptions) -> None:
        self.options = options

    def caption(self, items: Sequence[CaptionInput]) -> list[SceneDescription]:
        return [
            describe(i.keyframe, i.image, i.config, self.options, i.original_size) for i in items
        ]


class BlipCaptioner:
    """BLIP captions for the images, batched; falls back to the scene text for frames whose
    image could not be fetched."""

    def __init__(
        self,
        model_dir: Path,
        options: DescribeOptions,
        device: str = "auto",
        max_new_tokens: int = 30,
    ) -> None:
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        if not (model_dir / "config.json").is_file():
            raise CaptionerError(f"{model_dir}: no config.json; expected a saved BLIP model folder")
        self.device = "cuda" if device == "auto" and torch.cuda.is_available() else device
        self.device = "cpu" if self.device == "auto" else self.device
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        try:
            self.processor = BlipProcessor.from_pretrained(model_dir, local_files_only=True)
            model: Any = BlipForConditionalGeneration.from_pretrained(
                model_dir, local_files_only=True, torch_dtype=dtype
            )
            self.model = model.to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise CaptionerError(f"{model_dir}: cannot load BLIP model: {exc}") from exc
        self.dtype = dtype
        self.scene = SceneCaptioner(options)
        self.max_new_tokens = max_new_tokens
        self.name = f"blip:{model_dir.name}+{SceneCaptioner.name}"

    def generate(self, images: Sequence[U8]) -> list[str]:
        """BLIP sentences for a batch of RGB images."""
        import torch

        inputs: Any = self.processor(images=list(images), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            tokens = self.model.generate(
                pixel_values=pixel_values, max_new_tokens=self.max_new_tokens
            )
        processor: Any = self.processor
        texts = processor.batch_decode(tokens, skip_special_tokens=True)
        return [str(t).strip() for t in texts]

    def caption(self, items: Sequence[CaptionInput]) -> list[SceneDescription]:
        scenes = self.scene.caption(items)
        with_image = [i for i, item in enumerate(items) if item.image is not None]
        images = [items[i].image for i in with_image]
        sentences = self.generate([im for im in images if im is not None]) if images else []
        out = list(scenes)
        for index, sentence in zip(with_image, sentences, strict=True):
            if sentence:
                scene = scenes[index]
                text = f"{sentence[0].upper()}{sentence[1:]}. {scene.text}"[:4000]
                out[index] = SceneDescription(text, scene.objects)
        return out


def build_captioner(
    backend: str, options: DescribeOptions, model_dir: Path | None, device: str
) -> Captioner:
    """The configured backend; BLIP needs ``model_dir``."""
    if backend == "blip":
        if model_dir is None:
            raise CaptionerError("backend 'blip' needs blip_model_dir (a local model folder)")
        return BlipCaptioner(model_dir, options, device)
    return SceneCaptioner(options)
