"""The baseline: a bare Litestar handler served with the same uvicorn settings as the app.

Every other row of the benchmark table is a ratio to this one, so the numbers say how much the
app's own work (sessions, SQL, templates, JWT) costs on top of the framework and the server.
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[hello], debug=False, logging_config=None)
