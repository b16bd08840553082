//! Prometheus metrics, written as the text exposition format by `GET /metrics`: requests by
//! route and status, queue depth per model, batch sizes and latencies as histograms, generated
//! tokens. Counters are plain atomics and small maps behind a mutex: nothing here is on a
//! per-token hot path except one atomic add.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    state: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            state: Mutex::new((vec![0; bounds.len()], 0.0, 0)),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                s.0[i] += 1;
            }
        }
        s.1 += v;
        s.2 += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&s.0) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.2);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", s.1);
        let _ = writeln!(out, "{name}_count{braces} {}", s.2);
    }
}

const SIZE_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const SECONDS_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Per-model batch statistics.
pub struct BatchMetrics {
    /// Inputs per batch.
    pub size: Histogram,
    /// Seconds per batch's forward pass.
    pub seconds: Histogram,
    /// Requests dropped from the queue because their caller went away (timeout, disconnect).
    pub cancelled: AtomicU64,
}

impl Default for BatchMetrics {
    fn default() -> Self {
        BatchMetrics {
            size: Histogram::new(SIZE_BOUNDS),
            seconds: Histogram::new(SECONDS_BOUNDS),
            cancelled: AtomicU64::new(0),
        }
    }
}

/// Everything `/metrics` reports.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Tokens generated, all models together.
    pub generated_tokens: AtomicU64,
    /// Requests being answered now.
    pub in_flight: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            generated_tokens: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

/// One model's queue and batches, read when `/metrics` is written.
pub struct ModelGauges<'a> {
    /// The model's name.
    pub name: &'a str,
    /// Requests waiting.
    pub queue_depth: usize,
    /// Its batches (encoders and classifiers).
    pub batches: Option<&'a BatchMetrics>,
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry((route.to_string(), status)).or_insert(0) += 1;
        drop(r);
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        l.entry(route.to_string())
            .or_insert_with(|| Histogram::new(SECONDS_BOUNDS))
            .observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self, models: &[ModelGauges<'_>]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP torchless_requests_total Requests by route and status (HTTP status; for \
             grpc:/ routes the gRPC code).\n",
        );
        out.push_str("# TYPE torchless_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "torchless_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP torchless_request_seconds Request latency by route.\n");
        out.push_str("# TYPE torchless_request_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h.write(
                &mut out,
                "torchless_request_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out.push_str("# HELP torchless_requests_in_flight Requests being answered now.\n");
        out.push_str("# TYPE torchless_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "torchless_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str("# HELP torchless_queue_depth Requests waiting per model.\n");
        out.push_str("# TYPE torchless_queue_depth gauge\n");
        for m in models {
            let _ = writeln!(
                out,
                "torchless_queue_depth{{model=\"{}\"}} {}",
                m.name, m.queue_depth
            );
        }
        out.push_str("# HELP torchless_batch_size Inputs per encoder/classifier batch.\n");
        out.push_str("# TYPE torchless_batch_size histogram\n");
        for m in models {
            if let Some(b) = m.batches {
                b.size.write(
                    &mut out,
                    "torchless_batch_size",
                    &format!("model=\"{}\"", m.name),
                );
            }
        }
        out.push_str("# HELP torchless_batch_seconds Forward-pass time per batch.\n");
        out.push_str("# TYPE torchless_batch_seconds histogram\n");
        for m in models {
            if let Some(b) = m.batches {
                b.seconds.write(
                    &mut out,
                    "torchless_batch_seconds",
                    &format!("model=\"{}\"", m.name),
                );
            }
        }
        out.push_str(
            "# HELP torchless_cancelled_total Queued inputs dropped because their caller left.\n",
        );
        out.push_str("# TYPE torchless_cancelled_total counter\n");
        for m in models {
            if let Some(b) = m.batches {
                let _ = writeln!(
                    out,
                    "torchless_cancelled_total{{model=\"{}\"}} {}",
                    m.name,
                    b.cancelled.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP torchless_generated_tokens_total Tokens generated.\n");
        out.push_str("# TYPE torchless_generated_tokens_total counter\n");
        let _ = writeln!(
            out,
            "torchless_generated_tokens_total {}",
            self.generated_tokens.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = String::new();
        h.write(&mut out, "x", "m=\"a\"");
        assert_eq!(
            out,
            "x_bucket{m=\"a\",le=\"1\"} 1\nx_bucket{m=\"a\",le=\"2\"} 2\n\
             x_bucket{m=\"a\",le=\"+Inf\"} 3\nx_sum{m=\"a\"} 11\nx_count{m=\"a\"} 3\n"
        );
    }
}
