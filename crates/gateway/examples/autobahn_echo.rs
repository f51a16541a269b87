//! A WebSocket echo server built on the gateway's own parts, for the Autobahn|Testsuite
//! (`deploy/check/autobahn.sh`): the gateway's listener (hyper with its deadlines), its
//! upgrade checks ([`handshake`]), its frame reader ([`MessageReader`], made to accept binary)
//! and its frame writer ([`wire`]). Only the echo loop is this file's own.
//!
//! ```sh
//! cargo run -p roomcast-gateway --example autobahn_echo -- 127.0.0.1:9001
//! ```
//!
//! It prints `listening on <addr>` once bound (port 0 picks a free one). Every text or binary
//! message comes back as one frame; a ping gets its pong; a close is answered with the client's
//! code (1000 for an empty close); a frame the reader refuses is answered with its RFC 6455 code
//! (1002 protocol error, 1007 invalid UTF-8, 1009 too big) and the connection ends.

use std::io::Write;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use roomcast_gateway::connection::reader::{Message, MessageReader};
use roomcast_gateway::{handshake, listener, wire};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Autobahn's largest messages are 16 MiB (case 9.1.6, 9.2.6).
const MAX_MESSAGE: usize = 64 << 20;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let tcp = tokio::net::TcpListener::bind(&addr).await?;
    writeln!(std::io::stdout().lock(), "listening on {}", tcp.local_addr()?)?;
    let app = Router::new().route("/", get(upgrade).route_layer(axum::middleware::from_fn(handshake::require_upgrade)));
    listener::serve(tcp, app, Duration::from_secs(10), CancellationToken::new()).await;
    Ok(())
}

async fn upgrade(upgrade: IncomingUpgrade) -> Response {
    match upgrade.upgrade() {
        Ok((response, socket)) => {
            tokio::spawn(echo(socket));
            response.into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn echo(socket: UpgradeFut) {
    let Ok(ws) = socket.await else { return };
    let (rd, mut wr) = tokio::io::split(ws.into_inner());
    let mut reader = MessageReader::accepting_binary(rd, MAX_MESSAGE);
    let close = loop {
        let reply: Bytes = match reader.read().await {
            Ok(Message::Text(text)) => wire::text(&text),
            Ok(Message::Binary(data)) => wire::binary(&data),
            Ok(Message::Ping(payload)) => wire::pong(&payload),
            Ok(Message::Pong) => continue,
            Ok(Message::Close(code)) => break Some(code.unwrap_or(1000)),
            Err(e) => break e.rfc_code(),
        };
        if wr.write_all(&reply).await.is_err() {
            return;
        }
    };
    if let Some(code) = close {
        let _ = wr.write_all(&wire::close(code, "")).await;
        let _ = wr.shutdown().await;
    }
    linger(reader).await;
}

/// Reads what the client still sends until it closes (bounded), so that the kernel sends FIN
/// rather than RST and the client reads the close frame.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(reader: MessageReader<tokio::io::ReadHalf<S>>) {
    let mut rd = reader.into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut scratch = [0u8; 4096];
        while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}
