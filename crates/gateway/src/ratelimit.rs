//! [`TokenBucket`]: the per-connection `emit` rate limit.
//!
//! A bucket per connection, owned by the connection task, so it needs no lock and no shared
//! map (governor's keyed limiter would add a concurrent map for state only one task touches).

use std::time::Instant;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst);
        Self { rate, burst, tokens: burst, updated: Instant::now() }
    }

    /// Takes one token at `now`; `false` when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 40);
        assert_eq!((0..50).filter(|_| bucket.try_take(start)).count(), 40);
        // 100 ms at 20/s refills two tokens.
        let later = start + Duration::from_millis(100);
        assert_eq!((0..5).filter(|_| bucket.try_take(later)).count(), 2);
        // Refill never passes the burst.
        let much_later = start + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| bucket.try_take(much_later)).count(), 40);
    }
}
