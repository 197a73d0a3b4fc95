"""Runtime shared by all services: settings, Kafka I/O, dead letters, metrics, logging."""
