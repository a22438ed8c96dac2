"""Prometheus metrics for `/metrics` (text format), in a registry of the server's own.

Requests by route and status, engine queue depth, generations running, TTFT and request duration
histograms, tokens in and out. Buckets are sized for a CPU machine: TTFT from 50 ms to 60 s.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (re-exported for the endpoint)

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("evo_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"], registry=r)
        self.duration = Histogram("evo_http_request_duration_seconds", "Time to the end of the response.", ["route"],
                                  buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("evo_ttft_seconds", "Request received to first token out (chat completions).", buckets=TTFT_BUCKETS, registry=r)
        self.tokens = Counter("evo_tokens_total", "Tokens through the model.", ["direction"], registry=r)
        self.generating = Gauge("evo_generations_in_progress", "Chat completions being answered or waiting.", registry=r)
        self.queue = Gauge("evo_engine_queue_depth", "Generations waiting for the engine owner.", registry=r)
        self.rejected = Counter("evo_busy_rejections_total", "Requests answered 503 because the engine queue was full.", registry=r)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue.set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
