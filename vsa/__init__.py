"""vsa: video stream analytics on Kafka.

Services live in :mod:`vsa.services`, topic contracts in :mod:`vsa.schemas`, the runtime shared by
all services (settings, Kafka I/O, dead letters, metrics) in :mod:`vsa.runtime`, and the local
Kafka/OpenSearch stack in :mod:`vsa.devstack`.
"""

__version__ = "0.1.0"
