//! [`Tracker`]: what was published, what arrived, and how late, for one scenario run.
//!
//! Every published payload starts `{"_s":<sequence>,"_t":<intended send time, µs since the Unix
//! epoch>`. Receivers find both numbers by scanning the frame's first bytes rather than parsing
//! it whole, so the client's cost per delivery stays small next to the server's. Latency is
//! from the *intended* send time (open loop): a publisher that falls behind shows up as latency.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded exactly (µs); anything above is clamped to it.
const MAX_LATENCY_US: u64 = 120_000_000;

/// Now, in µs since the Unix epoch (the clock every process on the machine shares).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// An empty latency histogram: 1 µs to 120 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// The payload of message `seq` intended at `t_us`, padded with `p` to about `size` bytes.
pub fn payload(seq: u64, t_us: u64, size: usize) -> String {
    let head = format!("{{\"_s\":{seq},\"_t\":{t_us},\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut out = String::with_capacity(head.len() + pad + 2);
    out.push_str(&head);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    out
}

/// Sequence number and intended send time stamped in a received frame, if it carries them.
pub fn stamp(frame: &[u8]) -> Option<(u64, u64)> {
    let window = &frame[..frame.len().min(256)];
    let at = crate::ws::find(window, b"{\"_s\":")?;
    let (seq, rest) = digits(&window[at + 6..])?;
    let rest = rest.strip_prefix(b",\"_t\":")?;
    let (t, _) = digits(rest)?;
    Some((seq, t))
}

fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let value = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    Some((value, &s[n..]))
}

/// Delivery bookkeeping for messages `0..capacity`.
#[derive(Debug)]
pub struct Tracker {
    expected: Vec<AtomicU32>,
    got: Vec<AtomicU32>,
    intended: Vec<AtomicU64>,
    last_at: Vec<AtomicU64>,
    delivered: AtomicU64,
    untracked: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Messages below this sequence number belong to an earlier run over the same clients and
    /// are not counted at all.
    first: u64,
}

impl Tracker {
    /// Room for `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        let zeros32 = || (0..capacity).map(|_| AtomicU32::new(0)).collect();
        let zeros64 = || (0..capacity).map(|_| AtomicU64::new(0)).collect();
        Self {
            expected: zeros32(),
            got: zeros32(),
            intended: zeros64(),
            last_at: zeros64(),
            delivered: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            first: 0,
            latency: Mutex::new(histogram()),
        }
    }

    /// Records that message `seq`, intended at `t_us`, should reach `recipients` connections.
    pub fn published(&self, seq: u64, t_us: u64, recipients: u32) {
        if let Some(slot) = self.expected.get(seq as usize) {
            slot.store(recipients, Ordering::Relaxed);
            self.intended[seq as usize].store(t_us, Ordering::Relaxed);
        }
    }

    /// The same tracker, for messages `first..capacity` only: what arrives late from an earlier
    /// run on the same clients is left out of every count.
    pub fn from_seq(mut self, first: u64) -> Self {
        self.first = first;
        self
    }

    /// Records the stamps (see [`stamp`]) of every event frame of one read, received at `now`.
    pub fn received(&self, stamps: &[Option<(u64, u64)>], now: u64) {
        let mut latencies = [0u64; 64];
        let mut n = 0;
        for stamp in stamps {
            let Some((seq, t)) = *stamp else {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if seq < self.first {
                continue;
            }
            if let Some(got) = self.got.get(seq as usize) {
                got.fetch_add(1, Ordering::Relaxed);
                self.last_at[seq as usize].fetch_max(now, Ordering::Relaxed);
            }
            self.delivered.fetch_add(1, Ordering::Relaxed);
            latencies[n] = now.saturating_sub(t).max(1);
            n += 1;
            if n == latencies.len() {
                self.record(&latencies[..n]);
                n = 0;
            }
        }
        if n > 0 {
            self.record(&latencies[..n]);
        }
    }

    fn record(&self, latencies: &[u64]) {
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        for &l in latencies {
            h.saturating_record(l.min(MAX_LATENCY_US));
        }
    }

    /// Deliveries so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Deliveries expected by the messages published so far.
    pub fn expected_total(&self) -> u64 {
        self.expected.iter().map(|e| u64::from(e.load(Ordering::Relaxed))).sum()
    }

    /// The final accounting.
    pub fn outcome(&self) -> Outcome {
        let mut lost = 0;
        let mut duplicated = 0;
        let mut last = histogram();
        let mut last_delivery = 0;
        for i in 0..self.expected.len() {
            let expected = u64::from(self.expected[i].load(Ordering::Relaxed));
            let got = u64::from(self.got[i].load(Ordering::Relaxed));
            lost += expected.saturating_sub(got);
            duplicated += got.saturating_sub(expected);
            let at = self.last_at[i].load(Ordering::Relaxed);
            if expected > 0 && got > 0 {
                last.saturating_record(
                    at.saturating_sub(self.intended[i].load(Ordering::Relaxed)).clamp(1, MAX_LATENCY_US),
                );
            }
            last_delivery = last_delivery.max(at);
        }
        let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Outcome {
            delivered: self.delivered(),
            lost,
            duplicated,
            untracked: self.untracked.load(Ordering::Relaxed),
            last_delivery_us: last_delivery,
            latency,
            last_recipient: last,
        }
    }
}

/// What a run delivered.
#[derive(Debug)]
pub struct Outcome {
    /// Stamped frames received.
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries beyond the expected count.
    pub duplicated: u64,
    /// Event frames without a stamp.
    pub untracked: u64,
    /// When the last stamped frame arrived (µs since the epoch).
    pub last_delivery_us: u64,
    /// Per-delivery latency (µs).
    pub latency: Histogram<u64>,
    /// Per-message latency of its last recipient (µs).
    pub last_recipient: Histogram<u64>,
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// (percentile, ms) points for the plot.
    pub curve: Vec<(f64, f64)>,
}

impl LatencySummary {
    /// Summarizes a histogram of µs values.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let curve = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0]
            .iter()
            .map(|&q| (q * 100.0, ms(q)))
            .collect();
        Self {
            count: h.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
            curve,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_stamped_json_of_the_requested_size() {
        let p = payload(42, 1_700_000_000_000_000, 100);
        assert_eq!(p.len(), 100);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["_s"], 42);
        let frame = format!(r#"{{"type":"event","room":"org:o","event":"m","data":{p},"offset":3}}"#);
        assert_eq!(stamp(frame.as_bytes()), Some((42, 1_700_000_000_000_000)));
        assert_eq!(stamp(format!(r#"42["m",{p}]"#).as_bytes()), Some((42, 1_700_000_000_000_000)));
        assert_eq!(stamp(br#"{"type":"pong"}"#), None);
    }

    #[test]
    fn counts_lost_and_duplicated_deliveries() {
        let t = Tracker::new(3);
        t.published(0, 1000, 2);
        t.published(1, 1000, 2);
        let a = payload(0, 1000, 40);
        let b = payload(1, 1000, 40);
        let stamps: Vec<_> = [&a, &a, &a, &b].iter().map(|p| stamp(p.as_bytes())).collect();
        t.received(&stamps, 3000);
        let o = t.outcome();
        assert_eq!((o.delivered, o.lost, o.duplicated), (4, 1, 1));
        assert_eq!(o.latency.value_at_quantile(0.5), 2000);
        assert_eq!(o.latency.len(), 4);
        let s = LatencySummary::of(&o.latency);
        assert!((s.p99_ms - 2.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn a_tracker_from_a_later_sequence_ignores_stragglers_of_an_earlier_run() {
        let t = Tracker::new(4).from_seq(2);
        t.published(2, 1000, 1);
        let late = payload(1, 10, 40);
        let now = payload(2, 1000, 40);
        let stamps: Vec<_> = [&late, &now].iter().map(|p| stamp(p.as_bytes())).collect();
        t.received(&stamps, 3000);
        let o = t.outcome();
        assert_eq!((o.delivered, o.lost, o.duplicated, o.latency.len()), (1, 0, 0, 1));
    }
}
