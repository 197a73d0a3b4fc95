"""tracker: multi-object tracking and alert rules (Faust; planned, see the tracker issue)."""
