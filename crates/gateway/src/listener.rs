//! Accepting sockets and serving HTTP on them, with a deadline for every accepted socket.
//!
//! `axum::serve` sets no timer on hyper, so hyper's header-read timeout never runs: a client
//! that sends half a request head (or nothing) holds its socket, and its file descriptor,
//! forever, and a few hundred of them lock every other client out. Here each connection is
//! served by hyper's HTTP/1 builder with a timer, so a request's head must arrive within
//! `header_read_timeout` of the accept (or of the previous response on a kept-alive
//! connection); over it, hyper closes the connection. What follows a head has its own bounds:
//! API bodies `body_read_timeout`, a WebSocket's upgrade and token `auth_timeout`.
//!
//! An accept that fails for want of descriptors (EMFILE, ENFILE) or memory is retried after a
//! backoff of 10 ms doubling to 100 ms, neither spinning nor ending the listener, and logged once
//! per streak of failures, with a line when accepting works again. Errors of one connection
//! that died in the backlog are ignored.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// First and longest pause after a failed accept.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(100));

/// Serves `router` on `listener` until `stop` is cancelled, then shuts every HTTP connection
/// down gracefully (requests in flight finish) and returns once they are closed. Upgraded
/// sockets are not waited for: they belong to their connection tasks.
pub async fn serve(listener: TcpListener, router: Router, header_read_timeout: Duration, stop: CancellationToken) {
    let connections = TaskTracker::new();
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            // The peer gave up while waiting in the backlog: nothing to do with this listener.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "accept failed; retrying with a backoff until sockets are released");
                }
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff(failures)) => continue,
                }
            }
        };
        if failures > 0 {
            tracing::info!(failed_accepts = failures, "accepting again");
            failures = 0;
        }
        // Without TCP_NODELAY, Nagle holds a small frame back until the previous one is acked,
        // and a client's delayed ACK turns that into up to 40 ms of added latency. Frames are
        // already batched in user space (one write per wakeup), so Nagle has nothing to add.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(tcp), service).with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // A head that did not arrive in time, a client that went away, a malformed request.
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// The pause after the `failures`-th failed accept in a row: 10, 20, 40, 80, then 100 ms.
fn backoff(failures: u32) -> Duration {
    let (first, longest) = BACKOFF;
    first.saturating_mul(1 << failures.saturating_sub(1).min(4)).min(longest)
}

/// Errors that concern one connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_100_ms() {
        let ms: Vec<u128> = (1..=7).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80, 100, 100, 100]);
        assert_eq!(backoff(u32::MAX), Duration::from_millis(100));
    }
}
