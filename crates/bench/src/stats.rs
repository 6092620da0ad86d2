//! Medians, result rows, and cheap process counters.

use std::time::Instant;

/// Median and spread of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Summary {
    /// Summarizes `samples` (which must not be empty).
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Summary { median, min: v[0], max: v[n - 1], n }
    }
}

/// One line of the result table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Benchmark number and name, e.g. `"1 throughput"`.
    pub bench: &'static str,
    /// What exactly was measured.
    pub case: String,
    /// Median of the per-run medians, and their spread.
    pub value: Summary,
    pub unit: &'static str,
    /// Derived numbers (rates, ratios, counters).
    pub note: String,
}

impl Row {
    pub fn new(
        bench: &'static str,
        case: impl Into<String>,
        value: Summary,
        unit: &'static str,
        note: impl Into<String>,
    ) -> Row {
        Row { bench, case: case.into(), value, unit, note: note.into() }
    }
}

/// Prints rows as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| bench | case | median | runs min..max | unit | notes |");
    println!("|---|---|---:|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {}..{} (n={}) | {} | {} |",
            r.bench,
            r.case,
            fmt(r.value.median),
            fmt(r.value.min),
            fmt(r.value.max),
            r.value.n,
            r.unit,
            r.note
        );
    }
}

/// Formats a number with 3 significant digits (no exponent).
pub fn fmt(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// Minor page faults of the calling thread so far.
pub fn thread_minflt() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_minflt as u64
    }
}

/// Voluntary + involuntary context switches of the calling thread so far.
pub fn thread_ctx_switches() -> u64 {
    // SAFETY: as above.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64
    }
}

/// The 1/5/15-minute load averages, as `/proc/loadavg` shows them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Seconds spent in `f`.
pub fn time<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// User + system CPU seconds of the whole process so far (all threads).
pub fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}
