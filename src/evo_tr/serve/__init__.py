"""`evo serve`: EVO-TR over an OpenAI-compatible HTTP API (FastAPI + uvicorn), plus its own /v1/evo endpoints.

Modules: state.py (what the server holds, API key, loopback rule), app.py (middleware, /health, /metrics),
openai_api.py (/v1/models, /v1/chat/completions, /v1/embeddings), evo_api.py (sessions, feedback,
memories, knowledge, route, adapters, nights), schemas.py (typed bodies), errors.py (one error shape),
metrics.py (Prometheus), commands.py (the CLI command).
"""
