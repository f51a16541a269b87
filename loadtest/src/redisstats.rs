//! [`CommandStats`]: what Redis itself says its commands cost (`INFO commandstats`), so that a
//! run reports Redis microseconds per publish and per subscribe beside the servers' CPU.
//!
//! `usec` there is the time Redis spent executing each command, without the event loop's
//! reading, parsing and writing. A script's time includes the commands it calls, which are also
//! counted under their own names; totals here count each command once and leave the script
//! commands' own overhead to the per-script figure. One `INFO` over a short-lived
//! connection is all this needs, so it speaks RESP itself rather than pulling in a client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The commands that run scripts (their time includes what the script called).
const SCRIPT_COMMANDS: [&str; 6] = ["evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"];

/// Calls and microseconds per command, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandStats {
    /// Command name (lower case, as Redis prints it) to `(calls, usec)`.
    pub commands: BTreeMap<String, (u64, u64)>,
}

impl CommandStats {
    /// Reads the counters of the Redis at `addr`.
    pub async fn read(addr: SocketAddr) -> anyhow::Result<Self> {
        let text = tokio::time::timeout(Duration::from_secs(5), info(addr))
            .await
            .context("INFO commandstats took over 5 s")??;
        Ok(Self::parse(&text))
    }

    /// Parses the text of `INFO commandstats`.
    pub fn parse(text: &str) -> Self {
        let mut commands = BTreeMap::new();
        for line in text.lines() {
            let Some((name, fields)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let field =
                |key: &str| fields.split(',').find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok());
            if let (Some(calls), Some(usec)) = (field("calls"), field("usec")) {
                commands.insert(name.to_owned(), (calls, usec));
            }
        }
        Self { commands }
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &CommandStats) -> CommandStats {
        let commands = self
            .commands
            .iter()
            .map(|(name, &(calls, usec))| {
                let (c0, u0) = earlier.commands.get(name).copied().unwrap_or_default();
                (name.clone(), (calls.saturating_sub(c0), usec.saturating_sub(u0)))
            })
            .filter(|(_, (calls, _))| *calls > 0)
            .collect();
        CommandStats { commands }
    }

    /// Microseconds of every command, each counted once: a script's time includes the commands
    /// it calls, which Redis also counts under their own names, so the script commands are left
    /// out (their own overhead shows in [`Self::scripts`]), and so is `INFO` (the load tester's).
    pub fn total_usec(&self) -> u64 {
        self.commands
            .iter()
            .filter(|(name, _)| name.as_str() != "info" && !SCRIPT_COMMANDS.contains(&name.as_str()))
            .map(|(_, &(_, usec))| usec)
            .sum()
    }

    /// Calls and microseconds of the scripts (`EVALSHA`, `EVAL`, `FCALL`).
    pub fn scripts(&self) -> (u64, u64) {
        SCRIPT_COMMANDS
            .iter()
            .filter_map(|name| self.commands.get(*name))
            .fold((0, 0), |(c, u), &(calls, usec)| (c + calls, u + usec))
    }
}

/// Sends `INFO commandstats` and returns the bulk string.
async fn info(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to Redis at {addr}"))?;
    stream.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n").await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "Redis closed the connection before the INFO reply ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(body) = bulk(&buf)? {
            return Ok(body);
        }
    }
}

/// The bulk string in `buf`, once all of it arrived.
fn bulk(buf: &[u8]) -> anyhow::Result<Option<String>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..end])?;
    let len: usize = match head.strip_prefix('$') {
        Some(len) => len.parse().with_context(|| format!("bulk length {len:?}"))?,
        None => anyhow::bail!("Redis answered INFO with {head:?}"),
    };
    let body = &buf[end + 2..];
    if body.len() < len {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&body[..len]).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\ncmdstat_publish:calls=10,usec=5,usec_per_call=0.50\r\ncmdstat_info:calls=3,usec=90,usec_per_call=30.00\r\n";

    #[test]
    fn counters_parse_and_subtract() {
        let before = CommandStats::parse(INFO);
        assert_eq!(before.commands["evalsha"], (10, 300));
        let after = CommandStats::parse(&INFO.replace("calls=10,usec=300", "calls=14,usec=420"));
        let delta = after.since(&before);
        assert_eq!(delta.commands.len(), 1, "unchanged commands drop out: {delta:?}");
        assert_eq!(delta.scripts(), (4, 120));
        assert_eq!(after.total_usec(), 5, "neither INFO nor the scripts, whose inner commands count under their names");
    }

    #[test]
    fn a_reply_is_whole_only_once_its_length_arrived() {
        assert_eq!(bulk(b"$5\r\nabc").unwrap(), None);
        assert_eq!(bulk(b"$5\r\nabcde\r\n").unwrap().as_deref(), Some("abcde"));
        assert!(bulk(b"-ERR no\r\n").is_err());
    }
}
