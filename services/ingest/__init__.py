"""ingest: decodes camera streams and video files with PyAV and publishes JPEG frames to Kafka."""
