"""The baseline: the smallest FastAPI + Mangum handler, one route."""

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    """Always fine."""
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
