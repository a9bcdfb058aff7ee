"""agora-client: a Python client for an agora data-space node.

Search the DCAT-AP catalogue, query it with SPARQL, negotiate ODRL agreements over the
Dataspace Protocol and read governed data as Apache Arrow tables::

    from agora_client import Node
    node = Node("http://localhost:8080", token)
    agreement = node.negotiate("health", purpose="dpv:AcademicResearch")
    table = node.read(agreement, columns=["patient_id", "hba1c"], limit=1000)
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

__version__ = "0.1.0"

__all__ = [
    "FACETS",
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
    "Transfer",
    "TransferRefused",
    "Unauthorized",
    "__version__",
]
