//! [`WebhookRelay`]: events POSTed to the backend's webhook in batches, signed, retried.
//!
//! A POST carries `{"events":[...]}` (each event with its `id`: the stream entry id, or a
//! node-made one on the embedded broker) and two headers: `X-Roomcast-Timestamp` (Unix
//! seconds) and `X-Roomcast-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<body>`
//! under the webhook secret. Any 2xx acknowledges the batch; anything else (or no answer within
//! the timeout) is retried with a backoff from 100 ms doubling to 30 s, the same batch again,
//! so the backend sees every event once or more, in order, and drops repeats by `id`.
//!
//! With Redis the batches come from the event stream, through consumer group
//! `roomcast-webhook`, and one node at a time relays (it holds a lease that it renews; when it
//! dies another takes over within the lease and first re-posts what was read and not
//! acknowledged). On the embedded broker they come from the node's [`MemoryQueue`].

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Request, Uri, header};
use hmac::{Hmac, Mac};
use hyper_util::rt::TokioIo;
use roomcast_publisher::Publisher;
use roomcast_publisher::presence::{PresenceKeys, StreamEvent};
use sha2::Sha256;
use tokio::net::TcpStream;

use super::MemoryQueue;
use crate::config::EventsConfig;
use crate::metrics::Metrics;

/// The consumer group, and its one consumer (whichever node holds the lease).
const GROUP: &str = "roomcast-webhook";
const CONSUMER: &str = "relay";
/// How long the relay lease lasts; the holder renews it at every batch and every third of it.
const LEASE: Duration = Duration::from_secs(10);
/// Pause between reads of an empty stream.
const IDLE: Duration = Duration::from_millis(100);
/// First and longest pause after a failed POST.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));

/// Where a relay's events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded broker's queue.
    Memory(Arc<MemoryQueue>),
    /// The Redis event stream; `node` names the lease holder.
    Stream {
        /// The shared Redis.
        publisher: Publisher,
        /// This node's id.
        node: String,
    },
}

/// POSTs events to one webhook.
#[derive(Debug)]
pub struct WebhookRelay {
    uri: Uri,
    secret: Vec<u8>,
    batch: usize,
    timeout: Duration,
    source: Source,
    metrics: Arc<Metrics>,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl WebhookRelay {
    /// A relay to `config`'s webhook from `source`; `None` without a webhook URL.
    pub fn new(config: &EventsConfig, source: Source, metrics: Arc<Metrics>) -> Option<Self> {
        let uri = config.webhook_url.as_ref()?.parse().ok()?;
        Some(Self {
            uri,
            secret: config.webhook_secret.clone().unwrap_or_default().into_bytes(),
            batch: config.webhook_batch,
            timeout: config.webhook_timeout,
            source,
            metrics,
        })
    }

    /// Relays until the task is dropped.
    pub async fn run(self) {
        match self.source.clone() {
            Source::Memory(queue) => loop {
                let batch = queue.peek(self.batch).await;
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
                let events: Vec<StreamEvent> =
                    batch.into_iter().map(|(id, e)| StreamEvent { id, json: e.json }).collect();
                self.deliver(&events, || async { true }).await;
                queue.remove(&ids);
                self.metrics.webhook_backlog(queue.len());
            },
            Source::Stream { publisher, node } => self.relay_stream(&publisher, &node).await,
        }
    }

    async fn relay_stream(&self, publisher: &Publisher, node: &str) {
        let lease = PresenceKeys::new(publisher.prefix()).relay_lease();
        let holds = async || publisher.hold_lease(&lease, node, LEASE).await.unwrap_or(false);
        loop {
            if !holds().await {
                tokio::time::sleep(LEASE / 3).await;
                continue;
            }
            if let Err(e) = publisher.create_event_group(GROUP, "$").await {
                tracing::warn!(error = %e, "cannot create the webhook's consumer group; retrying");
                tokio::time::sleep(LEASE / 3).await;
                continue;
            }
            tracing::info!("relaying events to the webhook");
            // While this node holds the lease: what it read before and did not acknowledge
            // first (a relay that died mid-batch), then new events.
            let mut pending = true;
            loop {
                let events = match publisher.read_event_group(GROUP, CONSUMER, self.batch, pending).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the event stream; retrying");
                        tokio::time::sleep(LEASE / 10).await;
                        if !holds().await {
                            break;
                        }
                        continue;
                    }
                };
                if events.is_empty() {
                    if pending {
                        pending = false;
                        continue;
                    }
                    if let Ok(Some(lag)) = publisher.event_group_lag(GROUP).await {
                        self.metrics.webhook_backlog(lag as usize);
                    }
                    tokio::time::sleep(IDLE).await;
                    if !holds().await {
                        break;
                    }
                    continue;
                }
                if !self.deliver(&events, &holds).await {
                    // Lost the lease while retrying: another node takes over from the group.
                    break;
                }
                let ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
                if let Err(e) = publisher.ack_events(GROUP, &ids).await {
                    tracing::warn!(error = %e, "cannot acknowledge relayed events; they will be posted again");
                }
            }
            tracing::info!("stopped relaying events to the webhook");
        }
    }

    /// POSTs `events` until the webhook takes them; between retries, `still` says whether to
    /// go on (the lease is still held). Returns whether they were taken.
    async fn deliver<F, Fut>(&self, events: &[StreamEvent], still: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let body = body(events);
        let mut backoff = BACKOFF.0;
        loop {
            match self.post(&body).await {
                Ok(()) => {
                    self.metrics.webhook_post("ok");
                    return true;
                }
                Err(e) => {
                    self.metrics.webhook_post("failed");
                    tracing::warn!(error = %e, events = events.len(), retry_ms = backoff.as_millis() as u64, "webhook POST failed");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
            if !still().await {
                return false;
            }
        }
    }

    async fn post(&self, body: &str) -> Result<(), String> {
        let timestamp = super::now_ms() / 1000;
        let signature = sign(&self.secret, timestamp, body.as_bytes());
        let host = self.uri.host().ok_or("the webhook URL has no host")?;
        let port = self.uri.port_u16().unwrap_or(80);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(header::HOST, self.uri.authority().map_or(host, |a| a.as_str()))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-roomcast-timestamp", timestamp.to_string())
            .header("x-roomcast-signature", signature)
            .body(body.to_owned())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let stream = TcpStream::connect((host, port)).await.map_err(|e| format!("connect: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| "timed out".to_owned())?
    }
}

/// `{"events":[...]}`, each event with its id first.
fn body(events: &[StreamEvent]) -> String {
    let mut out = String::from("{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Ids are `<ms>-<n>` or `<node>-<n>`: no character needs escaping but the node's, which
        // serde_json escapes.
        out.push_str("{\"id\":");
        out.push_str(&serde_json::to_string(&event.id).unwrap_or_default());
        match event.json.strip_prefix('{') {
            Some(rest) if rest.trim_start().starts_with('}') => out.push('}'),
            Some(rest) => {
                out.push(',');
                out.push_str(rest);
            }
            None => out.push('}'),
        }
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1.{}' | openssl dgst -sha256 -hmac key
        let sig = sign(b"key", 1, b"{}");
        assert_eq!(sig, "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
        assert_ne!(sign(b"key", 2, b"{}"), sig, "the timestamp is signed");
        assert_ne!(sign(b"other", 1, b"{}"), sig, "the key matters");
    }

    #[test]
    fn the_body_puts_each_events_id_first() {
        let events = vec![
            StreamEvent { id: "1-0".into(), json: r#"{"type":"user_online","user":"u1"}"#.into() },
            StreamEvent { id: "1-1".into(), json: "{}".into() },
        ];
        let parsed: serde_json::Value = serde_json::from_str(&body(&events)).unwrap();
        assert_eq!(parsed["events"][0]["id"], "1-0");
        assert_eq!(parsed["events"][0]["type"], "user_online");
        assert_eq!(parsed["events"][1], serde_json::json!({"id": "1-1"}));
    }
}
