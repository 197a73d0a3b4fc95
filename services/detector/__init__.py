"""detector: batched object detection on frames (planned; see the detector issue)."""
