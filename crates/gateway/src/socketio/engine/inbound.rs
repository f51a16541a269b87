//! [`Inbound`]: the client packets a session's transports hand to its task, bounded.
//!
//! A tokio `mpsc` channel would do the same job, but it allocates a block of 32 slots and a
//! cache-padded header (about 2 KiB) the moment it is made, for every session, idle or not;
//! this queue holds a `VecDeque` that allocates only when packets come, so an idle session costs
//! a few words here.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::packet::Packet;

/// Most packets queued before a transport waits for the session task (its backpressure).
pub(super) const INBOUND: usize = 64;

/// The queue; the transports send, the session task receives, and [`Inbound::close`] ends it.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    state: Mutex<State>,
    /// A packet was queued, or the queue closed.
    readable: Notify,
    /// A packet was taken, or the queue closed.
    writable: Notify,
}

#[derive(Debug, Default)]
struct State {
    packets: VecDeque<Packet>,
    closed: bool,
}

impl Inbound {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `packet`, waiting while [`INBOUND`] are queued; `false` once the queue is closed.
    pub(super) async fn send(&self, packet: Packet) -> bool {
        let mut packet = Some(packet);
        loop {
            // Made before the check: a take between the check and the wait still wakes it.
            let writable = self.writable.notified();
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                if state.packets.len() < INBOUND
                    && let Some(packet) = packet.take()
                {
                    state.packets.push_back(packet);
                    drop(state);
                    self.readable.notify_one();
                    return true;
                }
            }
            writable.await;
        }
    }

    /// The next packet; `None` once the queue is closed and empty. Cancel-safe: a packet is
    /// taken only by a call that returns it.
    pub(super) async fn recv(&self) -> Option<Packet> {
        loop {
            let readable = self.readable.notified();
            {
                let mut state = self.lock();
                if let Some(packet) = state.packets.pop_front() {
                    if state.packets.is_empty() {
                        // Give the memory back: most of a session's life is idle.
                        state.packets = VecDeque::new();
                    }
                    drop(state);
                    self.writable.notify_one();
                    return Some(packet);
                }
                if state.closed {
                    return None;
                }
            }
            readable.await;
        }
    }

    /// Ends the queue: senders get `false` from now on, and queued packets are dropped.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.packets = VecDeque::new();
        drop(state);
        self.writable.notify_waiters();
        self.readable.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_come_out_in_order_and_a_full_queue_waits_for_the_task() {
        let q = std::sync::Arc::new(Inbound::default());
        for i in 0..INBOUND {
            assert!(q.send(Packet::Message(i.to_string())).await);
        }
        let blocked = tokio::spawn({
            let q = std::sync::Arc::clone(&q);
            async move { q.send(Packet::Message("last".into())).await }
        });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished(), "a full queue makes the transport wait");
        assert_eq!(q.recv().await, Some(Packet::Message("0".into())));
        assert!(blocked.await.unwrap());
        for i in 1..INBOUND {
            assert_eq!(q.recv().await, Some(Packet::Message(i.to_string())));
        }
        assert_eq!(q.recv().await, Some(Packet::Message("last".into())));
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_senders_and_ends_the_receiver() {
        let q = std::sync::Arc::new(Inbound::default());
        let waiting = tokio::spawn({
            let q = std::sync::Arc::clone(&q);
            async move { q.recv().await }
        });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(!q.send(Packet::Noop).await);
    }
}
