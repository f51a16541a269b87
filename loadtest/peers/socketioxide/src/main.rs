//! socketioxide peer for `roomcast-loadtest`: the same rooms shape as roomcast, over Socket.IO v4.
//!
//! - connect with auth `{"token": "<JWT>"}` (HS256 with `JWT_SECRET`, ES256 with `JWT_PUBLIC_KEY`);
//!   joins `user:<sub>` and `org:<org>`, then emits `connected`;
//! - `subscribe` / `unsubscribe` events `{"room": ...}` with an ack `{"ok": true}`;
//! - `POST /publish` `{"room", "event", "data"}` emits to the room (every node through Redis when
//!   `REDIS_URL` is set, with `socketioxide-redis`).
//!
//! Environment: `LISTEN` (default 127.0.0.1:3001), `REDIS_URL`, `JWT_SECRET`, `JWT_PUBLIC_KEY`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide_redis::drivers::redis::redis_client as redis;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};

#[derive(Deserialize)]
struct Auth {
    token: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    org: Option<String>,
}

#[derive(Deserialize)]
struct RoomReq {
    room: String,
}

#[derive(Deserialize)]
struct PublishReq {
    room: String,
    event: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// The keys tokens may be signed with.
struct Keys {
    hs256: Option<DecodingKey>,
    es256: Option<DecodingKey>,
}

impl Keys {
    fn from_env() -> Self {
        let hs256 = std::env::var("JWT_SECRET").ok().map(|s| DecodingKey::from_secret(s.as_bytes()));
        let es256 = std::env::var("JWT_PUBLIC_KEY").ok().map(|path| {
            let pem = std::fs::read(&path).expect("JWT_PUBLIC_KEY readable");
            DecodingKey::from_ec_pem(&pem).expect("JWT_PUBLIC_KEY is an EC public key")
        });
        Self { hs256, es256 }
    }

    fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (self.hs256.as_ref(), Algorithm::HS256),
            Algorithm::ES256 => (self.es256.as_ref(), Algorithm::ES256),
            other => return Err(format!("algorithm {other:?} not accepted")),
        };
        let key = key.ok_or("no key for this algorithm")?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &Validation::new(alg)).map_err(|e| e.to_string())?;
        Ok(data.claims)
    }
}

static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();

async fn on_connect<A: Adapter>(s: SocketRef<A>, Data(auth): Data<Auth>) {
    let claims = match KEYS.get().expect("keys set").verify(&auth.token) {
        Ok(claims) => claims,
        Err(_) => {
            let _ = s.disconnect();
            return;
        }
    };
    s.join(format!("user:{}", claims.sub));
    if let Some(org) = &claims.org {
        s.join(format!("org:{org}"));
    }
    s.on("subscribe", async |s: SocketRef<A>, Data(req): Data<RoomReq>, ack: AckSender<A>| {
        s.join(req.room);
        let _ = ack.send(&serde_json::json!({"ok": true}));
    });
    s.on("unsubscribe", async |s: SocketRef<A>, Data(req): Data<RoomReq>, ack: AckSender<A>| {
        s.leave(req.room);
        let _ = ack.send(&serde_json::json!({"ok": true}));
    });
    let _ = s.emit("connected", &serde_json::json!({"user": claims.sub}));
}

async fn publish<A: Adapter>(State(io): State<Arc<SocketIo<A>>>, axum::Json(req): axum::Json<PublishReq>) -> StatusCode {
    match io.to(req.room).emit(&req.event, &req.data).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn serve<A: Adapter>(io: SocketIo<A>, layer: socketioxide::layer::SocketIoLayer<A>) {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let app = axum::Router::new()
        .route("/publish", post(publish::<A>))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(io))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind LISTEN");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("serve");
}

#[tokio::main]
async fn main() {
    let _ = KEYS.set(Keys::from_env());
    // The default of 128 packets per socket drops bursts that roomcast (1 MiB per connection)
    // and Socket.IO (unbounded) accept; give it room so the comparison is about speed.
    let builder = SocketIo::builder().max_buffer_size(8192);
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let url = if url.contains("protocol=") { url } else { format!("{url}?protocol=resp3") };
            let client = redis::Client::open(url).expect("REDIS_URL");
            let adapter = RedisAdapterCtr::new_with_redis(&client).await.expect("redis adapter");
            let (layer, io) = builder.with_adapter::<RedisAdapter<_>>(adapter).build_layer();
            io.ns("/", on_connect).await.expect("namespace");
            serve(io, layer).await;
        }
        Err(_) => {
            let (layer, io) = builder.build_layer();
            io.ns("/", on_connect);
            serve(io, layer).await;
        }
    }
}
