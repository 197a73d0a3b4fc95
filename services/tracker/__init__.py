"""tracker: multi-object tracking and alert rules as a Faust app (planned; see the tracker issue)."""
