"""The app's Prometheus metrics (`/metrics`), in a registry of its own per app.

`Metrics` implements the rag and speech observer protocols, so those packages report fallbacks,
failures and tokens without importing the web layer. Every call is a counter or histogram
update (a few microseconds); inbox gauges are read when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from storage.inbox import InboxStats

# The `*_created` series double every counter and say little; off for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# 10 ms (a text answer's retrieval) to 60 s (a long voice note on a busy CPU).
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Which provider (as /health names them) a failed stage or a fallback points at.
STAGE_PROVIDER = {"stt": "stt", "tts": "tts", "emotion": "emotion", "generate": "llm"}
FALLBACK_PROVIDER = {
    "llm": "llm",
    "query_rewrite": "llm",
    "embeddings": "embeddings",
    "vectors": "vectors",
    "tts": "tts",
    "emotion": "emotion",
}


@dataclass(frozen=True)
class Failure:
    """The last failure seen of a provider, for /health."""

    at: float
    what: str


class Metrics:
    """Counters and histograms of one app; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.failures: dict[str, Failure] = {}
        r = self.registry
        self._messages = Counter(
            "suara_messages",
            "Messages answered (the reply delivered), by channel and kind:"
            " text, voice, command, unsupported, refused.",
            ("channel", "kind"),
            registry=r,
        )
        self._stage_seconds = Histogram(
            "suara_stage_seconds",
            "Time spent per stage of an answer: download, transcode, stt, emotion, retrieve,"
            " generate, tts, total, send.",
            ("stage",),
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._stage_errors = Counter(
            "suara_stage_errors",
            "Failures per stage: a provider failed (stt, emotion, retrieve, generate, tts)"
            " or a download or delivery failed (download, send).",
            ("stage",),
            registry=r,
        )
        self._fallbacks = Counter(
            "suara_provider_fallbacks",
            "Times a component fell back from one provider to another.",
            ("component", "from", "to"),
            registry=r,
        )
        self._tokens = Counter(
            "suara_llm_tokens",
            "Language-model tokens used, by model and type (prompt, completion).",
            ("model", "type"),
            registry=r,
        )
        self._limited = Counter(
            "suara_limited",
            "Messages refused by a limit: minute, hour, day (per user), text, audio_seconds,"
            " audio_bytes.",
            ("channel", "limit"),
            registry=r,
        )
        self._inbox = Gauge(
            "suara_inbox_messages", "Inbox messages by status.", ("status",), registry=r
        )
        self._inbox_age = Gauge(
            "suara_inbox_oldest_pending_age_seconds",
            "Age of the oldest message waiting for an answer (0 when none waits).",
            registry=r,
        )

    # --- what the app reports ------------------------------------------------------------
    def message(self, channel: str, kind: str) -> None:
        """A message of `kind` was answered on `channel`."""
        self._messages.labels(channel, kind).inc()

    def observe_stages(self, timings_ms: Mapping[str, float]) -> None:
        """A reply's timings (milliseconds per stage, as Reply.timings holds them)."""
        for stage, ms in timings_ms.items():
            self._stage_seconds.labels(stage).observe(ms / 1000)

    def stage_seconds(self, stage: str, seconds: float) -> None:
        self._stage_seconds.labels(stage).observe(seconds)

    def stage_error(self, stage: str) -> None:
        self._stage_errors.labels(stage).inc()
        provider = STAGE_PROVIDER.get(stage)
        if provider is not None:
            self.failures[provider] = Failure(time.time(), f"{stage} failed")

    def fallback(self, component: str, source: str, target: str) -> None:
        self._fallbacks.labels(component, source, target).inc()
        provider = FALLBACK_PROVIDER.get(component)
        if provider is not None:
            self.failures[provider] = Failure(time.time(), f"{source} fell back to {target}")

    def llm_tokens(self, model: str, prompt: int, completion: int) -> None:
        if prompt:
            self._tokens.labels(model, "prompt").inc(prompt)
        if completion:
            self._tokens.labels(model, "completion").inc(completion)

    def limited(self, channel: str, limit: str) -> None:
        self._limited.labels(channel, limit).inc()

    # --- scraping ------------------------------------------------------------------------
    def set_inbox(self, stats: InboxStats) -> None:
        """The inbox gauges, set just before a scrape."""
        self._inbox.labels("pending").set(stats.pending)
        self._inbox.labels("parked").set(stats.parked)
        self._inbox.labels("done").set(stats.done)
        self._inbox_age.set(stats.oldest_pending_age)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
