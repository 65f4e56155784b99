"""Schemathesis hooks for `make api-fuzz` (loaded through SCHEMATHESIS_HOOKS).

Offsets and checkpoints are opaque: Talkdesk sends back exactly the tokens the bridge returned, so a
client cannot make one up, and a made-up one is a 400 by design (the Rust token fuzzer, tests/tests/fuzz.rs,
and the conformance kit check that every forged, foreign or misplaced token is refused). The fuzzer
therefore sends the real tokens that openapi.yaml gives as examples wherever it generated a token string,
and fuzzes everything else in the request as it likes.
"""

from pathlib import Path

import schemathesis
import yaml

_SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
_META = _SCHEMA["components"]["schemas"]["ContactsRequest"]["properties"]["meta"]["properties"]
_OFFSETS = [e for e in _META["offset"]["examples"] if isinstance(e, str)]
_CHECKPOINTS = [e for e in _META["synchronization_checkpoint"]["examples"] if isinstance(e, str)]


def _real(value, tokens):
    """A real token for a generated non-blank string; anything else (null, blank, not a string) unchanged."""
    if isinstance(value, str) and value.strip() and value not in tokens:
        return tokens[len(value) % len(tokens)]
    return value


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is None or operation.path != "/contacts" or not isinstance(body, dict):
        return body
    meta = body.get("meta")
    if not isinstance(meta, dict):
        return body
    if "offset" in meta:
        meta["offset"] = _real(meta["offset"], _OFFSETS)
        # The examples' offset belongs to an initial sync: it is refused with a checkpoint of another run.
        if isinstance(meta["offset"], str) and meta["offset"].strip():
            meta.pop("synchronization_checkpoint", None)
    if "synchronization_checkpoint" in meta:
        meta["synchronization_checkpoint"] = _real(meta["synchronization_checkpoint"], _CHECKPOINTS)
    return body
