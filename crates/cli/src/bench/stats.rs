//! Recording samples during a load run and turning them into a report.
//!
//! A load run is warm-up, then `runs` back-to-back measurement windows of
//! equal length under continuous load. Every request is attributed to the
//! window in which it was *sent*; its latency is the time from sending the
//! request to having read the whole response. Latencies are kept as sorted
//! samples (exact percentiles, nearest rank), not bucketed.

use super::sys::{CpuSnapshot, MetricsSnapshot, ServerCpu};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// When the warm-up ends and the measurement windows begin, and, for a
/// fixed rate, when each request is due.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub start: Instant,
    pub warmup: Duration,
    pub window: Duration,
    pub runs: usize,
    /// Requests per second over all connections; `None` = as fast as possible.
    pub rate: Option<f64>,
}

impl Plan {
    /// When the last window ends.
    pub fn end(&self) -> Instant {
        self.boundary(self.runs)
    }

    /// Start of window `k` (`k == runs` is the end of the last one).
    pub fn boundary(&self, k: usize) -> Instant {
        self.start + self.warmup + self.window * k as u32
    }

    /// The window a request sent at `t` belongs to, if any.
    pub fn window_of(&self, t: Instant) -> Option<usize> {
        let since = t.checked_duration_since(self.start + self.warmup)?;
        let k = (since.as_nanos() / self.window.as_nanos().max(1)) as usize;
        (k < self.runs).then_some(k)
    }

    /// When request number `i` (counted over all connections) is due.
    pub fn slot(&self, i: u64) -> Option<Instant> {
        self.rate.map(|r| self.start + Duration::from_secs_f64(i as f64 / r))
    }
}

/// What one connection (worker) saw; merged at the end.
#[derive(Default)]
pub struct Recorder {
    /// Latencies in nanoseconds of successful requests, per window.
    pub latencies: Vec<Vec<u64>>,
    /// How late requests were sent relative to their slot (fixed rate only).
    pub lags: Vec<Vec<u64>>,
    pub errors: Vec<BTreeMap<String, u64>>,
}

impl Recorder {
    pub fn new(runs: usize) -> Self {
        Recorder {
            latencies: vec![Vec::new(); runs],
            lags: vec![Vec::new(); runs],
            errors: vec![BTreeMap::new(); runs],
        }
    }

    pub fn ok(&mut self, window: usize, latency: Duration) {
        self.latencies[window].push(latency.as_nanos() as u64);
    }

    pub fn lag(&mut self, window: usize, lag: Duration) {
        self.lags[window].push(lag.as_nanos() as u64);
    }

    pub fn error(&mut self, window: usize, kind: impl Into<String>) {
        *self.errors[window].entry(kind.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        for (k, v) in other.latencies.into_iter().enumerate() {
            self.latencies[k].extend(v);
        }
        for (k, v) in other.lags.into_iter().enumerate() {
            self.lags[k].extend(v);
        }
        for (k, errors) in other.errors.into_iter().enumerate() {
            for (kind, n) in errors {
                *self.errors[k].entry(kind).or_default() += n;
            }
        }
    }
}

/// Resource readings taken at each window boundary.
#[derive(Clone, Debug)]
pub struct Boundary {
    pub at: Instant,
    pub client: CpuSnapshot,
    pub server: Option<ServerCpu>,
    pub metrics: Option<MetricsSnapshot>,
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some values (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The numbers of one measurement window.
#[derive(Clone, Debug, Default)]
pub struct WindowReport {
    pub ok: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// p99 of how late requests left relative to their slot (fixed rate only).
    pub lag_p99_ms: Option<f64>,
    /// CPU time of this (client) process per completed request, and cores used.
    pub client_us_per_req: f64,
    pub client_cores: f64,
    pub server_us_per_req: Option<f64>,
    pub server_cores: Option<f64>,
    /// Server CPU (cores) by thread name (digits stripped: `query-0` → `query-`).
    pub server_threads: BTreeMap<String, f64>,
    pub rounds_per_s: Option<f64>,
    pub round_ms: Option<f64>,
    pub msgs_per_round: Option<f64>,
    /// Mean time the server itself reports for the endpoint (its HTTP metrics).
    pub server_mean_ms: Option<f64>,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// Builds the per-window reports. `endpoint` is the route template whose
/// server-side latency histogram to read from `/metrics`.
pub fn window_reports(rec: &mut Recorder, bounds: &[Boundary], plan: &Plan, endpoint: &str) -> Vec<WindowReport> {
    let mut out = Vec::new();
    for k in 0..plan.runs {
        let lat = &mut rec.latencies[k];
        lat.sort_unstable();
        let ok = lat.len() as u64;
        let errors: u64 = rec.errors[k].values().sum();
        let secs = plan.window.as_secs_f64();
        let mut r = WindowReport {
            ok,
            errors,
            throughput: ok as f64 / secs,
            p50_ms: ms(percentile(lat, 50.0)),
            p90_ms: ms(percentile(lat, 90.0)),
            p99_ms: ms(percentile(lat, 99.0)),
            max_ms: ms(lat.last().copied().unwrap_or(0)),
            mean_ms: lat.iter().sum::<u64>().checked_div(ok).map_or(0.0, ms),
            ..Default::default()
        };
        if plan.rate.is_some() {
            let lags = &mut rec.lags[k];
            lags.sort_unstable();
            r.lag_p99_ms = Some(ms(percentile(lags, 99.0)));
        }
        if let (Some(a), Some(b)) = (bounds.get(k), bounds.get(k + 1)) {
            let wall = b.at.duration_since(a.at).as_secs_f64();
            let cpu = b.client.total().saturating_sub(a.client.total()).as_secs_f64();
            r.client_cores = cpu / wall;
            r.client_us_per_req = if ok > 0 { cpu * 1e6 / (ok + errors) as f64 } else { f64::NAN };
            if let (Some(sa), Some(sb)) = (&a.server, &b.server) {
                let cpu = sb.total.saturating_sub(sa.total).as_secs_f64();
                r.server_cores = Some(cpu / wall);
                r.server_us_per_req = Some(cpu * 1e6 / (ok + errors).max(1) as f64);
                for (name, t) in &sb.by_thread {
                    let before = sa.by_thread.get(name).copied().unwrap_or_default();
                    r.server_threads.insert(name.clone(), t.saturating_sub(before).as_secs_f64() / wall);
                }
            }
            if let (Some(ma), Some(mb)) = (&a.metrics, &b.metrics) {
                let d = |name: &str| mb.get(name) - ma.get(name);
                let rounds = d("cairn_round_seconds_count");
                r.rounds_per_s = Some(rounds / wall);
                if rounds > 0.0 {
                    r.round_ms = Some(d("cairn_round_seconds_sum") * 1e3 / rounds);
                    r.msgs_per_round = Some(d("cairn_ingress_inducted_total") / rounds);
                }
                let key = format!("{{endpoint=\"{endpoint}\"}}");
                let n = d(&format!("cairn_http_request_duration_seconds_count{key}"));
                if n > 0.0 {
                    r.server_mean_ms = Some(d(&format!("cairn_http_request_duration_seconds_sum{key}")) * 1e3 / n);
                }
            }
        }
        out.push(r);
    }
    out
}

fn opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

/// Prints the windows and their median as a Markdown table, then the
/// server's CPU split and the errors.
pub fn print_report(title: &str, reports: &[WindowReport], rec: &Recorder) {
    println!("\n{title}\n");
    println!(
        "| run | ok/s | p50 ms | p90 ms | p99 ms | max ms | errors | client µs/req | client cores | server µs/req | \
         server cores | server mean ms | rounds/s | round ms | msgs/round | lag p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &WindowReport| {
        println!(
            "| {name} | {:.0} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            r.throughput,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.errors,
            r.client_us_per_req,
            r.client_cores,
            opt(r.server_us_per_req, 0),
            opt(r.server_cores, 2),
            opt(r.server_mean_ms, 3),
            opt(r.rounds_per_s, 1),
            opt(r.round_ms, 2),
            opt(r.msgs_per_round, 1),
            opt(r.lag_p99_ms, 2),
        )
    };
    for (k, r) in reports.iter().enumerate() {
        row(&(k + 1).to_string(), r);
    }
    let m = median_report(reports);
    row("**median**", &m);
    if !m.server_threads.is_empty() {
        let split: Vec<String> = m.server_threads.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
        println!("\nserver CPU by thread (median cores): {}", split.join(", "));
    }
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for w in &rec.errors {
        for (kind, n) in w {
            *errors.entry(kind).or_default() += n;
        }
    }
    if !errors.is_empty() {
        println!("errors by kind (all windows):");
        for (kind, n) in errors {
            println!("  {n:>8}  {kind}");
        }
    }
}

/// Field-wise medians over the windows.
pub fn median_report(reports: &[WindowReport]) -> WindowReport {
    let f = |g: &dyn Fn(&WindowReport) -> f64| median(&reports.iter().map(g).collect::<Vec<_>>());
    let o = |g: &dyn Fn(&WindowReport) -> Option<f64>| {
        let v: Vec<f64> = reports.iter().filter_map(g).collect();
        (!v.is_empty()).then(|| median(&v))
    };
    let mut threads = BTreeMap::new();
    for name in reports.iter().flat_map(|r| r.server_threads.keys()) {
        if !threads.contains_key(name) {
            let v: Vec<f64> = reports.iter().map(|r| r.server_threads.get(name).copied().unwrap_or(0.0)).collect();
            threads.insert(name.clone(), median(&v));
        }
    }
    WindowReport {
        ok: f(&|r| r.ok as f64) as u64,
        errors: f(&|r| r.errors as f64) as u64,
        throughput: f(&|r| r.throughput),
        p50_ms: f(&|r| r.p50_ms),
        p90_ms: f(&|r| r.p90_ms),
        p99_ms: f(&|r| r.p99_ms),
        max_ms: f(&|r| r.max_ms),
        mean_ms: f(&|r| r.mean_ms),
        lag_p99_ms: o(&|r| r.lag_p99_ms),
        client_us_per_req: f(&|r| r.client_us_per_req),
        client_cores: f(&|r| r.client_cores),
        server_us_per_req: o(&|r| r.server_us_per_req),
        server_cores: o(&|r| r.server_cores),
        server_threads: threads,
        rounds_per_s: o(&|r| r.rounds_per_s),
        round_ms: o(&|r| r.round_ms),
        msgs_per_round: o(&|r| r.msgs_per_round),
        server_mean_ms: o(&|r| r.server_mean_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 50.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn windows_and_slots() {
        let start = Instant::now();
        let plan =
            Plan { start, warmup: Duration::from_secs(1), window: Duration::from_secs(2), runs: 3, rate: Some(100.0) };
        assert_eq!(plan.window_of(start), None);
        assert_eq!(plan.window_of(start + Duration::from_millis(1500)), Some(0));
        assert_eq!(plan.window_of(start + Duration::from_millis(5500)), Some(2));
        assert_eq!(plan.window_of(start + Duration::from_millis(7000)), None);
        assert_eq!(plan.slot(50), Some(start + Duration::from_millis(500)));
        assert_eq!(plan.end(), start + Duration::from_secs(7));
    }
}
