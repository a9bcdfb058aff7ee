"""Schemathesis hooks for the node's API (loaded with SCHEMATHESIS_HOOKS=agora_hooks): request
bodies of the textual media types it takes beyond JSON (SPARQL queries, NDJSON batches) are
sent as the generated text."""

import schemathesis


@schemathesis.serializer("application/sparql-query", "application/x-ndjson")
def as_text(ctx, value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
