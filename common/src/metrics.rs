//! Per-role Prometheus metrics: request counts and latency per operation, plus role gauges.

use std::time::{Duration, Instant};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics of one role process. Cheap to clone (the collectors are reference counted).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    gauges: IntGaugeVec,
    role: &'static str,
}

impl Metrics {
    /// Metrics named `ozone_<role>_...`.
    pub fn new(role: &'static str) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                format!("ozone_{role}_requests_total"),
                "Requests handled, by operation and outcome",
            ),
            &["op", "outcome"],
        )
        .expect("static metric definition is valid");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                format!("ozone_{role}_request_duration_seconds"),
                "Request latency by operation",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["op"],
        )
        .expect("static metric definition is valid");
        let gauges = IntGaugeVec::new(
            Opts::new(format!("ozone_{role}_state"), "Role state gauges"),
            &["name"],
        )
        .expect("static metric definition is valid");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(gauges.clone()),
        ] {
            registry
                .register(c)
                .expect("each collector is registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            gauges,
            role,
        }
    }

    pub fn role(&self) -> &'static str {
        self.role
    }

    /// Records one finished request.
    pub fn observe(&self, op: &str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "success" } else { "failure" };
        self.requests.with_label_values(&[op, outcome]).inc();
        self.latency
            .with_label_values(&[op])
            .observe(elapsed.as_secs_f64());
    }

    /// Starts timing `op`; the request counts as failed unless [`RequestTimer::success`] is called.
    pub fn timer(&self, op: &'static str) -> RequestTimer {
        RequestTimer {
            metrics: self.clone(),
            op,
            start: Instant::now(),
            ok: false,
        }
    }

    /// Times a fallible future and records its outcome.
    pub async fn time<T, E>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let mut t = self.timer(op);
        let r = fut.await;
        if r.is_ok() {
            t.success();
        }
        r
    }

    pub fn set_gauge(&self, name: &str, value: i64) {
        self.gauges.with_label_values(&[name]).set(value);
    }

    /// Prometheus text exposition of every metric of this role.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Records a request when dropped.
pub struct RequestTimer {
    metrics: Metrics,
    op: &'static str,
    start: Instant,
    ok: bool,
}

impl RequestTimer {
    pub fn success(&mut self) {
        self.ok = true;
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.metrics.observe(self.op, self.ok, self.start.elapsed());
    }
}
