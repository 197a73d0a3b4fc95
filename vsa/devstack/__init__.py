"""The local stack: a real Kafka broker (KRaft) and a real OpenSearch with k-NN, as local processes.

Public API (used by ``vsa devstack`` and the integration tests' session fixture)::

    from vsa.devstack import up, down, status, format_status
    info = up()                 # StackInfo: kafka_bootstrap, opensearch_url, started...
    print(format_status(status()))
    down()                      # ["opensearch (pid 42)", "kafka (pid 41)"]
    fetch()                     # download/install only
"""

from vsa.devstack.errors import DevstackError
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.stack import (
    ComponentStatus,
    Endpoint,
    StackInfo,
    StackStatus,
    down,
    fetch,
    format_status,
    status,
    up,
)

__all__ = [
    "ComponentStatus",
    "DevstackError",
    "DevstackSettings",
    "Endpoint",
    "StackInfo",
    "StackStatus",
    "down",
    "fetch",
    "format_status",
    "status",
    "up",
]
