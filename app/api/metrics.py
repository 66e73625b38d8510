"""Prometheus metrics of the service, on a registry of its own."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "badnet_filter_requests_total",
    "HTTP requests by endpoint and status code",
    ["endpoint", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "badnet_filter_request_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
IMAGES = Counter(
    "badnet_filter_images_total",
    "Images classified, by model and version",
    ["model", "version"],
    registry=REGISTRY,
)
FLAGGED = Counter(
    "badnet_filter_images_flagged_total",
    "Images answered with the poisoned label N (the filter flagged them), by model and version",
    ["model", "version"],
    registry=REGISTRY,
)
OVERRULED = Counter(
    "badnet_filter_images_overruled_total",
    "Unflagged images answered with the repaired net's label instead of B's (the repaired net "
    "ruled B's label out), by model and version: a weak backdoor's campaign shows here",
    ["model", "version"],
    registry=REGISTRY,
)
FALSE_FLAG_BUDGET = Gauge(
    "badnet_filter_false_flag_budget",
    "Share of clean faces the served rule was calibrated to flag (the strict rule: the "
    "repair's measured false-flag rate), by model: what the flag rate is compared with",
    ["model"],
    registry=REGISTRY,
)
EXPECTED_OVERRULE_RATE = Gauge(
    "badnet_filter_expected_overrule_rate",
    "Share of clean faces the served rule answers with the repaired net's label instead of "
    "B's, as the repair measured it, by model: what the overruled rate is compared with",
    ["model"],
    registry=REGISTRY,
)
MODELS_SERVED = Gauge(
    "badnet_filter_models_served", "Model pairs currently served", registry=REGISTRY
)
REPAIRS = Counter(
    "badnet_filter_repairs_total", "Repair jobs by outcome", ["outcome"], registry=REGISTRY
)
BATCH_IMAGES = Histogram(
    "badnet_filter_batch_images",
    "Images per run of the fused graph (dynamic batching)",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
EVIDENCE_RECORDS = Counter(
    "badnet_filter_evidence_records_total",
    "Flagged inputs queued for the evidence store",
    registry=REGISTRY,
)
EVIDENCE_DROPPED = Counter(
    "badnet_filter_evidence_dropped_total",
    "Flagged inputs the evidence store lost, by reason (queue_full, unwritable, unavailable)",
    ["reason"],
    registry=REGISTRY,
)
