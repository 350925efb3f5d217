"""QR codes for the console: a device's credential shown once, also as a QR code the installer can scan."""

from __future__ import annotations

import io

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from hub.api.deps import require_roles
from hub.api.schemas import Body

router = APIRouter(prefix="/api/qr", tags=["devices"])


class QrIn(Body):
    """The text to encode; the hub keeps nothing and logs nothing of it."""

    text: str = Field(min_length=1, max_length=1000)


@router.post("", dependencies=[require_roles("admin", "operator")], response_class=Response,
             summary="Render text as a QR code (SVG)", responses={200: {"content": {"image/svg+xml": {}}}})
async def qr(body: QrIn) -> Response:
    """POST, not GET: a credential must not end up in a URL, a proxy log or the browser history."""
    import segno

    out = io.BytesIO()
    segno.make(body.text, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True,
                                           title="QR")
    return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
