"""Developer-only endpoints: the landing page and fault injection (``/__dev/faults``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Template

from saas.devidp.context import get_idp
from saas.devidp.faults import FaultSpecError

_JSON_ONLY = (
    "Send Content-Type: application/json (a cross-site form cannot, so this needs no CSRF token)"
)


@get("/")
async def landing(state: State) -> Template:
    idp = get_idp(state)
    return Template(
        template_name="landing.html",
        context={
            "issuer": idp.issuer,
            "base_url": idp.base_url,
            "app_base_url": idp.settings.app_base_url,
        },
    )


@get("/__dev/faults")
async def list_faults(state: State) -> dict[str, Any]:
    return {"faults": [f.as_json() for f in get_idp(state).faults.list()]}


@post("/__dev/faults", opt={"exclude_from_csrf": True}, status_code=201)
async def add_fault(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return Response(
            {"error": "invalid_request", "error_description": _JSON_ONLY}, status_code=415
        )
    try:
        spec = await request.json()
    except Exception:
        spec = None
    if not isinstance(spec, dict):
        return Response(
            {"error": "invalid_request", "error_description": "JSON object expected"},
            status_code=400,
        )
    try:
        fault = get_idp(state).faults.add(spec)
    except FaultSpecError as exc:
        return Response(
            {"error": "invalid_request", "error_description": str(exc)}, status_code=400
        )
    return Response(fault.as_json(), status_code=201)


@post("/__dev/faults/revoke-m2m-tokens", opt={"exclude_from_csrf": True}, status_code=200)
async def revoke_m2m_tokens(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    """Revoke every machine-to-machine token issued so far (the Management API answers 401 to
    them from then on), as rotating the M2M client's credentials does at Auth0."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return Response(
            {"error": "invalid_request", "error_description": _JSON_ONLY}, status_code=415
        )
    return Response({"revoked": get_idp(state).faults.revoke_m2m_tokens()}, status_code=200)


@delete("/__dev/faults", opt={"exclude_from_csrf": True}, status_code=204)
async def clear_faults(state: State) -> None:
    get_idp(state).faults.clear()


@delete("/__dev/faults/{fault_id:int}", opt={"exclude_from_csrf": True}, status_code=204)
async def remove_fault(fault_id: FromPath[int], state: State) -> None:
    get_idp(state).faults.remove(fault_id)
