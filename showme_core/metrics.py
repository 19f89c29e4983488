"""Prometheus metrics, one registry per service instance (so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "showme_http_requests",
            "HTTP requests answered, by route template and status class.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "showme_http_request_duration_seconds",
            "Time to answer HTTP requests (feeds excluded).",
            ["route"],
            registry=self.registry,
        )
        self.invites_created = Counter(
            "showme_invites_created", "Invites created.", ["via"], registry=self.registry
        )
        self.invites_opened = Counter(
            "showme_invites_opened", "Invites whose link a caller opened.", registry=self.registry
        )
        self.sms_status = Counter(
            "showme_sms_status",
            "SMS status changes, by provider and status.",
            ["provider", "status"],
            registry=self.registry,
        )
        self.media_received = Counter(
            "showme_media_received",
            "Pictures stored, by kind and the format they arrived in.",
            ["kind", "format"],
            registry=self.registry,
        )
        self.media_rejected = Counter(
            "showme_media_rejected",
            "Uploads refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.media_ingest = Histogram(
            "showme_media_ingest_seconds",
            "Decoding, cleaning and durably storing one picture.",
            buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
            registry=self.registry,
        )
        self.media_purged = Counter(
            "showme_media_purged", "Pictures purged by retention.", registry=self.registry
        )
        self.retention_sweeps = Counter(
            "showme_retention_sweeps",
            "Background sweeps completed (retention purge, then orphaned bytes).",
            registry=self.registry,
        )
        self.media_orphans_removed = Counter(
            "showme_media_orphans_removed",
            "Stored files without a committed row (left by a crash), removed.",
            registry=self.registry,
        )
        self.signal_sockets = Gauge(
            "showme_signal_sockets",
            "Open signaling sockets, by role.",
            ["role"],
            registry=self.registry,
        )
        self.ice_failures = Counter(
            "showme_ice_provider_failures",
            "ICE provider errors, by provider.",
            ["provider"],
            registry=self.registry,
        )
        # No product in this field publishes its success rates; ShowMe does.
        self.stream_camera = Counter(
            "showme_stream_camera",
            "Callers asked for the camera, by answer.",
            ["result"],
            registry=self.registry,
        )
        self.stream_connected = Counter(
            "showme_stream_connected",
            "Live video connections, direct or relayed.",
            ["route"],
            registry=self.registry,
        )
        self.stream_stills = Counter(
            "showme_stream_stills", "Sessions that fell back to stills.", registry=self.registry
        )
        self.stream_failed = Counter(
            "showme_stream_failed",
            "Live video failures reported by callers.",
            registry=self.registry,
        )
        self.stream_first_frame = Histogram(
            "showme_stream_first_frame_seconds",
            "From the caller's camera grant to the first frame decoded on a console.",
            buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20),
            registry=self.registry,
        )
        self.feed_clients = Gauge(
            "showme_event_feed_clients", "Open console event feeds.", registry=self.registry
        )
        self.consumer_delivered = Counter(
            "showme_event_consumer_delivered",
            "Events a durable consumer (plugin or CAD adapter) acknowledged, by consumer.",
            ["consumer"],
            registry=self.registry,
        )
        self.consumer_failures = Counter(
            "showme_event_consumer_failures",
            "Deliveries a durable consumer failed (each is retried), by consumer.",
            ["consumer"],
            registry=self.registry,
        )
        self.feed_readers = Gauge(
            "showme_event_feed_readers",
            "Organisations with open event feeds in this instance (one store reader each).",
            registry=self.registry,
        )
        self.feed_store_reads = Counter(
            "showme_event_feed_store_reads",
            "Store reads for event feeds: an organisation's reader, a feed's own backlog, or the "
            "instance's poll for events no bus announced.",
            ["by"],
            registry=self.registry,
        )
        self.feeds_refused = Counter(
            "showme_event_feeds_refused",
            "Event feeds refused with 429, by the limit reached (credential or organisation).",
            ["limit"],
            registry=self.registry,
        )
        self.feed_rechecks = Counter(
            "showme_event_feed_credential_checks",
            "Open feeds' credentials checked again, by result (ok, refused, error).",
            ["result"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
