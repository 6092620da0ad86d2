//! What the operating system and the server tell about resource use:
//! this process's CPU time (`getrusage`), a server process's CPU time by
//! thread and its RSS (`/proc`), and the server's Prometheus `/metrics`.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// User and system CPU time of this process so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSnapshot {
    pub user: Duration,
    pub system: Duration,
}

impl CpuSnapshot {
    /// `getrusage(RUSAGE_SELF)`: every thread of this process, live or exited.
    pub fn now() -> CpuSnapshot {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a rusage struct.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        if rc != 0 {
            return CpuSnapshot::default();
        }
        let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        CpuSnapshot { user: tv(usage.ru_utime), system: tv(usage.ru_stime) }
    }

    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

/// CPU time of another process: in total and by thread name.
#[derive(Clone, Debug, Default)]
pub struct ServerCpu {
    /// utime + stime of the whole process (includes exited threads).
    pub total: Duration,
    /// utime + stime of the live threads, grouped by name with trailing
    /// digits removed (`query-0`, `query-1` → `query-`).
    pub by_thread: BTreeMap<String, Duration>,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `(comm, utime + stime)` from a `/proc/.../stat` file.
fn read_stat(path: &Path) -> Option<(String, Duration)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the comm: state(3) ppid(4) ... utime(14) stime(15), 1-based.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, Duration::from_secs_f64((utime + stime) / clock_ticks())))
}

impl ServerCpu {
    pub fn read(pid: u32) -> Option<ServerCpu> {
        let (_, total) = read_stat(Path::new(&format!("/proc/{pid}/stat")))?;
        let mut by_thread = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Some((comm, t)) = read_stat(&task.path().join("stat")) {
                    let name = comm.trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
                    *by_thread.entry(name).or_default() += t;
                }
            }
        }
        Some(ServerCpu { total, by_thread })
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => bail!("no VmRSS in /proc/{pid}/status"),
    }
}

/// The process listening on TCP `port` on this machine, found through
/// `/proc/net/tcp{,6}` and the processes' socket file descriptors.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else { continue };
            let listening = *state == "0A";
            let port_matches = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port);
            if listening && port_matches {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Samples of a Prometheus text exposition, keyed by `name{labels}`.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot(HashMap<String, f64>);

impl MetricsSnapshot {
    pub fn parse(text: &str) -> MetricsSnapshot {
        let mut map = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((key, value)) = line.rsplit_once(' ')
                && let Ok(v) = value.trim().parse::<f64>()
            {
                map.insert(key.trim().to_string(), v);
            }
        }
        MetricsSnapshot(map)
    }

    /// A sample's value, 0 if absent.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let m = MetricsSnapshot::parse(
            "# HELP x y\ncairn_blocks_total 12\ncairn_http_request_duration_seconds_sum{endpoint=\"/a/{ecid}/q\"} 0.5\n# EOF\n",
        );
        assert_eq!(m.get("cairn_blocks_total"), 12.0);
        assert_eq!(m.get("cairn_http_request_duration_seconds_sum{endpoint=\"/a/{ecid}/q\"}"), 0.5);
        assert_eq!(m.get("missing"), 0.0);
    }

    #[test]
    fn reads_own_cpu_and_rss() {
        let me = std::process::id();
        let cpu = ServerCpu::read(me).unwrap();
        assert!(!cpu.by_thread.is_empty());
        let (rss, hwm) = rss_kib(me).unwrap();
        assert!(rss > 0 && hwm >= rss);
        let _ = CpuSnapshot::now().total();
    }

    #[test]
    fn finds_the_listening_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Our own pid is skipped on purpose (the bench never measures itself).
        assert_eq!(pid_listening_on(port), None);
    }
}
