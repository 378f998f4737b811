"""ASGI entry point for servers: `uvicorn saas.asgi:app`."""

from saas.app import create_app

app = create_app()
