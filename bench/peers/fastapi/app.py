"""FastAPI peer: GET / -> "Hello, World!" as text/plain, Content-Length 13.

Run by bench/scripts/peers.sh as
    .venv/bin/uvicorn app:app --host 127.0.0.1 --port PORT --workers N \
        --loop uvloop --http httptools --no-access-log --no-server-header --log-level warning
Uvicorn adds the Date header. The explicit content-type header keeps Starlette from appending
"; charset=utf-8", so the bytes match the other peers (header names are lower case here).
"""

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()

BODY = b"Hello, World!"
HEADERS = {"content-type": "text/plain"}


@app.get("/")
async def hello() -> Response:
    return Response(content=BODY, headers=HEADERS)
