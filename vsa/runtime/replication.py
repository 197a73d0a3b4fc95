"""How many copies of each partition a topic keeps, derived from the cluster's size by default.

One rule for every topic the project creates (the pipeline's topics, the tracker's changelog)
and for the local cluster's own defaults: replication factor 3 and ``min.insync.replicas`` 2 on a
cluster of three or more brokers (the production shape: one broker may be lost without losing a
message or stopping writes), one copy on a single broker. Producers use ``acks=all``, so an
acknowledged message is on ``min.insync.replicas`` brokers at least.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Replicas a topic gets by default once the cluster has this many brokers.
PRODUCTION_REPLICAS = 3
#: ``min.insync.replicas`` of a topic with PRODUCTION_REPLICAS or more replicas.
PRODUCTION_MIN_INSYNC = 2


@dataclass(frozen=True)
class Replication:
    """Replicas of every partition and how many must hold a write before it is acknowledged."""

    factor: int
    min_insync_replicas: int


def replication_for(
    brokers: int, factor: int | None = None, min_insync_replicas: int | None = None
) -> Replication:
    """The replication of a new topic on a cluster of ``brokers`` brokers.

    ``factor`` None: ``min(3, brokers)``. ``min_insync_replicas`` None: 2 when the factor is 3 or
    more, else 1 (a two-replica topic keeps taking writes with one broker down). Raising
    ``min_insync_replicas`` buys durability (more copies per acknowledged write) at the cost of
    availability (writes stop once fewer replicas are in sync). ValueError when the result
    cannot work: no broker, or more in-sync replicas required than there are replicas.
    """
    if brokers < 1 and factor is None:
        raise ValueError("the cluster reports no broker: cannot choose a replication factor")
    chosen = factor if factor is not None else min(PRODUCTION_REPLICAS, brokers)
    if min_insync_replicas is not None:
        insync = min_insync_replicas
    else:
        insync = PRODUCTION_MIN_INSYNC if chosen >= PRODUCTION_REPLICAS else 1
    if insync > chosen:
        raise ValueError(
            f"min.insync.replicas {insync} is more than the replication factor {chosen} "
            f"({brokers} broker(s)): no write could ever be acknowledged"
        )
    return Replication(factor=chosen, min_insync_replicas=insync)
