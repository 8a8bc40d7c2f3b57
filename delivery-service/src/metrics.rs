//! Prometheus metrics, served at `GET /metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the per-route request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template, e.g. `/v1/groups/{group_id}/messages`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    /// The route template.
    pub route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Every metric the DS exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RouteLabels, Counter>,
    /// Request latency by route, seconds.
    pub latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    /// Log entries stored (all groups).
    pub stored_messages: Gauge,
    /// Groups known.
    pub groups: Gauge,
    /// How many durability waiters each fsync served.
    pub fsync_batch: Histogram,
    /// Duration of each fsync, seconds.
    pub fsync_seconds: Histogram,
    /// Messages accepted by kind.
    pub accepted: Family<Vec<(String, String)>, Counter>,
    /// Reloads of a group's cached state because another replica wrote to it.
    pub group_refreshes: Counter,
    /// Change notifications received from other replicas.
    pub notifications: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("grove_ds");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let stored_messages = Gauge::default();
        let groups = Gauge::default();
        let fsync_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let fsync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let accepted = Family::<Vec<(String, String)>, Counter>::default();
        let group_refreshes = Counter::default();
        let notifications = Counter::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("stored_messages", "Group log entries stored", stored_messages.clone());
        registry.register("groups", "Groups known to the DS", groups.clone());
        registry.register(
            "fsync_batch_size",
            "Durability waiters served by one fsync (group commit)",
            fsync_batch.clone(),
        );
        registry.register("fsync_duration_seconds", "Duration of each fsync", fsync_seconds.clone());
        registry.register("accepted_messages", "MLS messages accepted, by kind", accepted.clone());
        registry.register(
            "group_refreshes",
            "Reloads of a cached group because another replica wrote to it",
            group_refreshes.clone(),
        );
        registry.register("notifications", "Change notifications received from other replicas", notifications.clone());
        Metrics {
            registry,
            requests,
            latency,
            stored_messages,
            groups,
            fsync_batch,
            fsync_seconds,
            accepted,
            group_refreshes,
            notifications,
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an accepted message of `kind`.
    pub fn count_accepted(&self, kind: &str) {
        self.accepted.get_or_create(&vec![("kind".to_string(), kind.to_string())]).inc();
    }
}
