"""The vsa services: one sub-package per service, each a pure core plus a thin Kafka runner."""
