"""Prometheus metrics of the sink (names shared with dashboards and alerts)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "personaflow_sends_total",
    "Triggers handled by the sink, by outcome",
    ["outcome", "trigger_type", "persona", "variant"],
)
ESP_SECONDS = Histogram(
    "personaflow_esp_request_seconds",
    "Time the ESP took to accept (or refuse) one send",
    ["esp"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ESP_RETRIES = Counter("personaflow_esp_retries_total", "ESP send retries", ["esp"])
ESP_ERRORS = Counter("personaflow_esp_errors_total", "ESP errors by kind", ["esp", "kind"])
TRIGGER_TO_ACCEPT = Histogram(
    "personaflow_trigger_to_accept_seconds",
    "From trigger creation to ESP acceptance",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
SINK_DEAD_LETTERS = Counter(
    "personaflow_sink_dead_letters_total", "Triggers sent to dlq.sends", ["reason"]
)
INFLIGHT = Gauge("personaflow_sink_inflight", "Triggers being processed now")
WEBHOOK_EVENTS = Counter(
    "personaflow_webhook_events_total", "ESP webhook events by type and result", ["event", "result"]
)
SUPPRESSION_UPDATES = Counter(
    "personaflow_suppression_updates_total", "Suppression list changes by reason", ["reason"]
)
