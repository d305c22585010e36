//! Prometheus metrics: request durations by route template, events
//! appended, projection lag. The recorder is process-wide and installed
//! once, however many apps a process starts (tests start many).

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for request durations (Prometheus histograms, so
/// several servers' figures can be aggregated).
pub const DURATION_BUCKETS_SECONDS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` if another
/// recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                .set_buckets(DURATION_BUCKETS_SECONDS)
                .and_then(PrometheusBuilder::install_recorder)
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "no Prometheus recorder: another one is installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Records one served request.
pub fn request_served(method: &Method, route: &str, status: u16, elapsed: Duration) {
    let labels = [("method", method.as_str().to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    metrics::histogram!("grantlog_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Records events appended by a command.
pub fn events_appended(count: usize) {
    metrics::counter!("grantlog_events_appended_total").increment(count as u64);
}

/// Renders the text exposition, with the projection's lag and position.
pub fn render(projection_lag: u64, projection_position: u64) -> String {
    metrics::gauge!("grantlog_projection_lag_events").set(projection_lag as f64);
    metrics::gauge!("grantlog_projection_position").set(projection_position as f64);
    match handle() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => "# no recorder installed\n".to_owned(),
    }
}
