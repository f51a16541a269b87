//! [`Client`]: one simulated user connection, speaking roomcast's protocol or Socket.IO v4.
//!
//! Setup steps (connect, subscribe) wait for their replies; the receive loop then hands the raw
//! text of every event to the caller without parsing it as a whole (see [`crate::tracker`]).

use std::io;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use roomcast_proto::frames::{ClientFrame, ServerFrame};

use crate::socketio::{self, EnginePacket, SocketPacket};
use crate::target::Protocol;
use crate::ws::{self, WsConn};

/// An authenticated connection.
#[derive(Debug)]
pub struct Client {
    ws: WsConn,
    protocol: Protocol,
    next_id: u64,
}

impl Client {
    /// Connects to `addr`, authenticates with `token` and waits for the server's welcome
    /// (roomcast's `connected` frame; the peers' `connected` event after their room joins).
    pub async fn connect(
        addr: SocketAddr,
        source: Option<IpAddr>,
        protocol: Protocol,
        token: &str,
    ) -> anyhow::Result<Self> {
        match protocol {
            Protocol::Roomcast => {
                let mut ws = ws::connect(addr, source, &format!("/ws?token={token}"), &[]).await?;
                let text = ws.next_text().await?;
                match serde_json::from_slice::<ServerFrame>(&text) {
                    Ok(ServerFrame::Connected { .. }) => Ok(Self { ws, protocol, next_id: 1 }),
                    _ => bail!("expected connected, got {}", String::from_utf8_lossy(&text)),
                }
            }
            Protocol::Socketio | Protocol::RoomcastSocketio => {
                let mut ws = ws::connect(addr, source, socketio::PATH, &[]).await?;
                let open = ws.next_text().await?;
                if !matches!(socketio::parse(&open), EnginePacket::Open(_)) {
                    bail!("expected Engine.IO open, got {}", String::from_utf8_lossy(&open));
                }
                ws.send_text(&socketio::connect(&serde_json::json!({ "token": token }))).await?;
                let mut client = Self { ws, protocol, next_id: 1 };
                // The peers emit `connected` after joining the user's rooms; roomcast joins
                // them before its CONNECT reply.
                let roomcast = protocol == Protocol::RoomcastSocketio;
                client
                    .wait_socketio(|packet| match packet {
                        SocketPacket::Connect(_) if roomcast => Ok(true),
                        SocketPacket::Event(_, payload) => Ok(socketio::event_name(payload) == Some("connected")),
                        SocketPacket::ConnectError(e) => bail!("connect refused: {}", String::from_utf8_lossy(e)),
                        SocketPacket::Disconnect => bail!("disconnected at connect"),
                        _ => Ok(false),
                    })
                    .await?;
                Ok(client)
            }
        }
    }

    async fn wait_socketio(
        &mut self,
        mut done: impl FnMut(&SocketPacket<'_>) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        loop {
            let text = self.ws.next_text().await?;
            match socketio::parse(&text) {
                EnginePacket::Ping => self.ws.send_text(socketio::PONG).await?,
                EnginePacket::Close => bail!("Engine.IO session closed"),
                EnginePacket::Message(packet) if done(&packet)? => return Ok(()),
                _ => {}
            }
        }
    }

    /// The connection itself, for scenarios that drive the protocol by hand after connecting.
    pub fn into_ws(self) -> WsConn {
        self.ws
    }

    /// Joins `room` and waits for the acknowledgement.
    pub async fn subscribe(&mut self, room: &str) -> anyhow::Result<()> {
        self.room_command("subscribe", room).await
    }

    /// Leaves `room` and waits for the acknowledgement.
    pub async fn unsubscribe(&mut self, room: &str) -> anyhow::Result<()> {
        self.room_command("unsubscribe", room).await
    }

    async fn room_command(&mut self, command: &str, room: &str) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        match self.protocol {
            Protocol::Roomcast => {
                let frame = if command == "subscribe" {
                    ClientFrame::Subscribe {
                        id: Some(id),
                        room: room.to_owned(),
                        token: None,
                        since: None,
                        presence: false,
                    }
                } else {
                    ClientFrame::Unsubscribe { id: Some(id), room: room.to_owned() }
                };
                self.ws.send_text(&serde_json::to_vec(&frame)?).await?;
                loop {
                    let text = self.ws.next_text().await?;
                    // Events may arrive before the reply; only this command's reply ends the wait.
                    match serde_json::from_slice::<ServerFrame>(&text) {
                        Ok(ServerFrame::Ok(reply)) if reply.id == Some(id) => return Ok(()),
                        Ok(ServerFrame::Error { id: Some(got), code, message }) if got == id => {
                            bail!("{command} {room}: {code:?}: {message}")
                        }
                        _ => {}
                    }
                }
            }
            Protocol::Socketio | Protocol::RoomcastSocketio => {
                let name = if self.protocol == Protocol::RoomcastSocketio {
                    format!("roomcast:{command}")
                } else {
                    command.to_owned()
                };
                let packet = socketio::event(Some(id), &name, &serde_json::json!({ "room": room }));
                self.ws.send_text(&packet).await?;
                self.wait_socketio(|packet| Ok(matches!(packet, SocketPacket::Ack(got, _) if *got == id)))
                    .await
                    .with_context(|| format!("{command} {room}"))
            }
        }
    }

    /// Sends a text frame (a command the scenario builds itself).
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.ws.send_text(text).await
    }

    /// Reads one batch from the socket and hands every event's text to `on_event`; answers
    /// heartbeats. Returns `Ok(false)` once the server closed the connection.
    pub async fn receive(&mut self, mut on_event: impl FnMut(&[u8])) -> io::Result<bool> {
        let protocol = self.protocol;
        let mut pings = 0;
        let open = self
            .ws
            .read_batch(|opcode, text| {
                if opcode != ws::op::TEXT {
                    return;
                }
                match (protocol.is_socketio(), text.first()) {
                    (false, _) | (true, Some(b'4')) => on_event(text),
                    (true, Some(b'2')) => pings += 1,
                    _ => {}
                }
            })
            .await?;
        for _ in 0..pings {
            self.ws.send_text(socketio::PONG).await?;
        }
        Ok(open)
    }
}
