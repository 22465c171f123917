"""FastAPI peer for the heavy-request scenario (bench/scripts/steer_heavy.sh).

GET /          -> "Hello, World!"
GET /work?ms=N -> burns N ms of CPU, then answers. WORK_MODE=def (the default) declares it
                  as a plain `def` (FastAPI runs it in its threadpool: the event loop goes
                  on, but the GIL is shared); WORK_MODE=async declares it `async def` (it runs
                  on the event loop and stalls the worker).

    WORK_MODE=async .venv/bin/uvicorn work_app:app --workers 2 ...
"""

import os
import time

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()

BODY = b"Hello, World!"
HEADERS = {"content-type": "text/plain"}


def burn(ms: int) -> int:
    until = time.monotonic() + min(ms, 10_000) / 1000
    while time.monotonic() < until:
        pass
    return ms


@app.get("/")
async def hello() -> Response:
    return Response(content=BODY, headers=HEADERS)


if os.environ.get("WORK_MODE", "def") == "async":

    @app.get("/work")
    async def work(ms: int = 0) -> Response:
        return Response(content=f"burned {burn(ms)} ms\n".encode(), headers=HEADERS)

else:

    @app.get("/work")
    def work(ms: int = 0) -> Response:
        return Response(content=f"burned {burn(ms)} ms\n".encode(), headers=HEADERS)
