"""agora-client: a Python client for an agora data-space node.

Search the DCAT-AP catalogue, query it with SPARQL, negotiate ODRL agreements over the
Dataspace Protocol and read governed data as Apache Arrow tables::

    from agora_client import Node
    node = Node("http://localhost:8080", token)
    agreement = node.negotiate("health", purpose="dpv:AcademicResearch")
    table = node.read(agreement, columns=["patient_id", "hba1c"], limit=1000)
    node.download(agreement, "shards/")          # verified, resumable Parquet shards

Training jobs: :class:`agora_client.training.ShardStream` (no torch needed) and
``agora_client.torch.AgoraIterableDataset`` (``pip install 'agora-client[torch]'``).
"""

from .errors import (
    AgoraError,
    NegotiationRefused,
    NotFound,
    ProtocolError,
    TransferRefused,
    Unauthorized,
)
from .models import SEARCH_SCHEMA, Agreement, PendingNegotiation, SearchResult, Transfer
from .node import FACETS, Node, RecordBatchStream
from .shards import IntegrityError, ShardPlan, ShardSegment
from .training import ShardStream

__version__ = "0.1.0"

__all__ = [
    "FACETS",
    "IntegrityError",
    "SEARCH_SCHEMA",
    "AgoraError",
    "Agreement",
    "NegotiationRefused",
    "Node",
    "NotFound",
    "PendingNegotiation",
    "ProtocolError",
    "RecordBatchStream",
    "SearchResult",
    "ShardPlan",
    "ShardSegment",
    "ShardStream",
    "Transfer",
    "TransferRefused",
    "Unauthorized",
    "__version__",
]
