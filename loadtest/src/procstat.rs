//! CPU time and memory of processes, from `/proc/<pid>/stat` and `/proc/<pid>/status`.

/// Clock ticks per second of `/proc/<pid>/stat` times (Linux `USER_HZ`, fixed at 100 in the ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds used by `pid` so far (all threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu(&stat)
}

/// CPU seconds of this process.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds of a set of processes (missing ones count as zero).
pub fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

/// CPU used by a set of processes and by the load tester over one measured window.
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    servers: f64,
    own: f64,
    redis: f64,
}

impl CpuWindow {
    /// Starts a window.
    pub fn start(servers: &[u32], redis: Option<u32>) -> Self {
        Self { servers: total_cpu(servers), own: own_cpu_seconds(), redis: redis.and_then(cpu_seconds).unwrap_or(0.0) }
    }

    /// CPU seconds since the start: (servers, load tester, redis).
    pub fn elapsed(&self, servers: &[u32], redis: Option<u32>) -> (f64, f64, f64) {
        let now = Self::start(servers, redis);
        (now.servers - self.servers, now.own - self.own, now.redis - self.redis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "123 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu(stat), Some(3.0));
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
