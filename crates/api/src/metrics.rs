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

/// Histogram buckets for the appends the PostgreSQL writer commits in one
/// transaction (group commit).
pub const BATCH_BUCKETS_APPENDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. `None` if another
/// recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                .set_buckets(DURATION_BUCKETS_SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full("grantlog_pg_batch_appends".to_owned()),
                        BATCH_BUCKETS_APPENDS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder)
            {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no Prometheus recorder: another one is installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The HELP line of every metric the process records (the PostgreSQL
/// writer's too), given once when the recorder is installed.
fn describe() {
    use metrics::Unit;
    metrics::describe_histogram!(
        "grantlog_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, by method, route template and status"
    );
    metrics::describe_counter!("grantlog_events_appended_total", "Events the API's writes appended to the log");
    metrics::describe_gauge!(
        "grantlog_projection_lag_events",
        "Events in the log that this server's views have not applied yet"
    );
    metrics::describe_gauge!(
        "grantlog_follower_lag_events",
        "Log head minus the position this server's views reflect (several servers on one log)"
    );
    metrics::describe_gauge!("grantlog_projection_position", "The last log position this server's views reflect");
    metrics::describe_gauge!(
        "grantlog_grant_cache_events",
        "Events of grant state the command handler holds in memory (at most --grant-cache-events-max when idle)"
    );
    metrics::describe_gauge!("grantlog_grant_cache_grants", "Grants the command handler holds in memory");
    metrics::describe_gauge!(
        "grantlog_ledger_cache_facts",
        "Facts of grant ledgers the views hold in memory (at most --ledger-cache-facts-max, but for ledgers not yet written to views.sqlite)"
    );
    metrics::describe_gauge!("grantlog_ledger_cache_ledgers", "Grant ledgers the views hold in memory");
    metrics::describe_counter!(
        "grantlog_ledger_cache_loads_total",
        "Ledgers read from views.sqlite (or folded from the log) because they were not in memory"
    );
    metrics::describe_counter!(
        "grantlog_ledger_cache_evictions_total",
        "Ledgers dropped from memory to stay within --ledger-cache-facts-max"
    );
    metrics::describe_histogram!(
        "grantlog_pg_batch_appends",
        "Appends committed together in one PostgreSQL group commit"
    );
    metrics::describe_histogram!(
        "grantlog_pg_lock_wait_seconds",
        Unit::Seconds,
        "Time a PostgreSQL group commit waited for the log's advisory lock"
    );
}

/// The `method` label of every method outside the standard ones: labels
/// come from a closed set, so no caller can add series at will.
pub const METHOD_OTHER: &str = "OTHER";

/// The `route` label of a request that matched no route (the router's
/// templates are the only other values).
pub const ROUTE_UNMATCHED: &str = "unmatched";

/// The method's label: its name for the RFC 9110 methods and PATCH, else
/// [`METHOD_OTHER`].
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN.iter().find(|m| *m == method).map_or(METHOD_OTHER, Method::as_str)
}

/// Records one served request. `route` is a route template of the table
/// or [`ROUTE_UNMATCHED`]; the status is at most three digits.
pub fn request_served(method: &Method, route: &str, status: u16, elapsed: Duration) {
    let labels =
        [("method", method_label(method).to_owned()), ("route", route.to_owned()), ("status", status_label(status))];
    metrics::histogram!("grantlog_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

fn status_label(status: u16) -> String {
    if (100..=599).contains(&status) { status.to_string() } else { "other".to_owned() }
}

/// Records events appended by a command.
pub fn events_appended(count: usize) {
    metrics::counter!("grantlog_events_appended_total").increment(count as u64);
}

/// Records how full the command handler's grant cache is (call before
/// [`render`]).
pub fn grant_cache(stats: domain::handler::CacheStats) {
    metrics::gauge!("grantlog_grant_cache_events").set(stats.events as f64);
    metrics::gauge!("grantlog_grant_cache_grants").set(stats.grants as f64);
}

/// Records how full the views' ledger cache is (call before [`render`]).
pub fn ledger_cache(stats: projections::CacheStats) {
    metrics::gauge!("grantlog_ledger_cache_facts").set(stats.facts as f64);
    metrics::gauge!("grantlog_ledger_cache_ledgers").set(stats.ledgers as f64);
    metrics::counter!("grantlog_ledger_cache_loads_total").absolute(stats.loads);
    metrics::counter!("grantlog_ledger_cache_evictions_total").absolute(stats.evictions);
}

/// Renders the text exposition, with the projection's lag and position, and
/// (when the log could be read) how far this server's views are behind the
/// log's head in the database: on a shared database, the follower lag.
pub fn render(projection_lag: u64, projection_position: u64, head: Option<u64>) -> String {
    metrics::gauge!("grantlog_projection_lag_events").set(projection_lag as f64);
    if let Some(head) = head {
        metrics::gauge!("grantlog_follower_lag_events").set(head.saturating_sub(projection_position) as f64);
    }
    metrics::gauge!("grantlog_projection_position").set(projection_position as f64);
    match handle() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => "# no recorder installed\n".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_method_is_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for name in ["FOO", "XYZZY", "get"] {
            let m = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&m), METHOD_OTHER, "{name}");
        }
    }

    #[test]
    fn the_grant_cache_gauges_are_rendered() {
        let _ = handle();
        grant_cache(domain::handler::CacheStats { events: 1234, grants: 5 });
        let text = render(0, 0, None);
        if handle().is_some() {
            assert!(text.contains("grantlog_grant_cache_events 1234"), "{text}");
            assert!(text.contains("grantlog_grant_cache_grants 5"), "{text}");
        }
    }
}
