//! Micro-benchmarks of the gateway's hot paths, so a regression shows up without the whole
//! load-test suite: encoding one event into a WebSocket frame, handing one frame to 10k
//! outboxes (and taking it back out, as each writer does), and verifying a connection token.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use roomcast_gateway::auth::{TokenVerifier, mint_hs256, unix_now};
use roomcast_gateway::config::{Config, JwtKey};
use roomcast_gateway::event::RoomEvent;
use roomcast_gateway::outbox::{Outbox, Outgoing};
use roomcast_gateway::wire;
use roomcast_proto::RoomName;
use roomcast_proto::frames::{EventParts, encode_event};
use serde_json::value::RawValue;

/// A P-256 key pair made for this benchmark only (`openssl ecparam -name prime256v1 -genkey`).
const ES256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgP4dTgJl9YgHSnRyo
LOTKKTpVEuGmO1b2Wc1RKrLE50ehRANCAASEo/Ai/HtLY/2Mzp0jarD0+VgiAfDv
cNzSnWZsxzCIjT7JPHEixzV4lYBl243M2S8FPf/ToXO31e30cArOiQ8I
-----END PRIVATE KEY-----
";
const ES256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhKPwIvx7S2P9jM6dI2qw9PlYIgHw
73Dc0p1mbMcwiI0+yTxxIsc1eJWAZduNzNkvBT3/06Fzt9Xt9HAKzokPCA==
-----END PUBLIC KEY-----
";

fn encode(c: &mut Criterion) {
    let data = RawValue::from_string(format!(r#"{{"text":"{}"}}"#, "x".repeat(88))).unwrap();
    c.bench_function("encode event (100 B data) to a text frame", |b| {
        b.iter(|| {
            let json = encode_event(EventParts {
                room: black_box("dialog:42"),
                event: "message:new",
                data: &data,
                id: Some("29d7415c88df43c077205a58d542d70a"),
                position: Some((18, "9f0c2a1b3d4e5f60")),
                from: None,
            });
            wire::text(&json)
        })
    });
}

fn fan_out(c: &mut Criterion) {
    let outboxes: Vec<Outbox> = (0..10_000).map(|_| Outbox::new(1 << 20)).collect();
    let room = RoomName::parse("org:o1").unwrap();
    let frame: Bytes = wire::text(&[b'x'; 200]);
    let event = RoomEvent::from_frame(&room, 1, Arc::from("E"), frame, None, Instant::now());
    let mut group = c.benchmark_group("fan-out");
    group.throughput(Throughput::Elements(outboxes.len() as u64));
    group.bench_function("one event to 10k outboxes, pushed and taken", |b| {
        let mut spare = VecDeque::new();
        b.iter(|| {
            let now = Instant::now();
            for outbox in &outboxes {
                let _ = outbox.push(Outgoing::Event(Arc::clone(&event)), now);
            }
            for outbox in &outboxes {
                spare = outbox.take(std::mem::take(&mut spare)).frames;
                spare.clear();
            }
        })
    });
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let claims = serde_json::json!({"sub": "u1", "org": "o1", "exp": unix_now() + 3600});
    let hs = TokenVerifier::new(&Config::with_secret("bench-secret").jwt).unwrap();
    let hs_token = mint_hs256("bench-secret", &claims);
    c.bench_function("verify connection token HS256", |b| {
        b.iter(|| hs.verify_connection(black_box(&hs_token)).unwrap())
    });

    let path = std::env::temp_dir().join(format!("roomcast-bench-es256-{}.pem", std::process::id()));
    std::fs::write(&path, ES256_PUBLIC).unwrap();
    let mut config = Config::with_secret("unused").jwt;
    config.key = JwtKey::PublicKey(path.clone());
    let es = TokenVerifier::new(&config).unwrap();
    let _ = std::fs::remove_file(&path);
    let key = jsonwebtoken::EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes()).unwrap();
    let es_token =
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key).unwrap();
    c.bench_function("verify connection token ES256", |b| {
        b.iter(|| es.verify_connection(black_box(&es_token)).unwrap())
    });
}

criterion_group!(benches, encode, fan_out, jwt);
criterion_main!(benches);
