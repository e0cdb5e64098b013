"""The local web viewer behind ``reliqa serve``: :func:`reliqa.web.app.create_app` (FastAPI).

Imported on use only: FastAPI and uvicorn are the optional ``web`` extra.
"""
