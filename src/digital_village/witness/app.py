"""The witness's HTTP service: ``POST /add-checkpoint`` (c2sp.org/tlog-witness) and its key.

A FastAPI app of its own, served by ``dv witness serve``; it shares nothing with the log's app.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response

from digital_village.witness.protocol import MAX_REQUEST_BYTES, Witness, WitnessRefusal

log = logging.getLogger("digital_village.witness")
TEXT = "text/plain; charset=utf-8"


def create_witness_app(witness: Witness) -> FastAPI:
    """The witness's app over one key and one store."""
    app = FastAPI(
        title="Digital Village witness",
        description="A C2SP tlog-witness: cosigns checkpoints consistent with the last it saw.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.witness = witness
    vkey = witness.cosigner.verifier().to_string()

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return Response("request too large\n", status_code=400, media_type=TEXT)
        try:
            # One SQLite compare-and-set and one signature: well under a millisecond, so it
            # runs on the event loop rather than paying a thread hand-off.
            line = witness.add_checkpoint(body)
        except WitnessRefusal as refusal:
            # A stale old size is routine (the log retries); anything else may be misbehaviour.
            routine = refusal.status in (400, 404) or refusal.stale
            level = logging.INFO if routine else logging.WARNING
            log.log(level, "refused add-checkpoint (%d): %s", refusal.status, refusal.detail)
            # Set as given: Starlette would add "; charset=utf-8" to a text/ media type, and
            # the protocol names the exact type of a 409's body.
            return Response(
                refusal.body,
                status_code=refusal.status,
                headers={"Content-Type": refusal.content_type},
            )
        return Response(line, media_type=TEXT)

    @app.get("/key")
    def key() -> Response:
        """The witness's verifier key line (``<name>+<key id>+base64(0x04 ‖ key)``)."""
        return Response(vkey + "\n", media_type=TEXT)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "witness": witness.cosigner.name, "logs": len(witness.store.logs())}

    return app
