#!/usr/bin/env python3
"""Writes the checked-in seed corpus (fuzz/seeds/<target>/): a few well-formed inputs per target,
so that the fuzzer starts from the shapes the parsers accept and mutates into the edges.
Run it again after changing a target's input format; `make fuzz` only reads the seeds."""
import base64, hashlib, hmac, json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret"  # the token target's key


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def frame(fin, opcode, payload, mask=b"\x01\x02\x03\x04"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# frame_reader: mode byte (bit 0 accept binary; cap = (mode >> 1) * 16 + 1), then frames.
write("frame_reader", "text", b"\xff" + frame(True, 1, b'{"type":"ping","id":1}'))
write("frame_reader", "fragments_and_ping", b"\xff" + frame(False, 1, "κό".encode()) + frame(True, 9, b"p")
      + frame(True, 0, "σμε".encode()))
write("frame_reader", "binary", b"\x41" + frame(False, 2, b"\x00\x01") + frame(True, 0, b"\x02"))
write("frame_reader", "close", b"\x20" + frame(True, 8, struct.pack(">H", 1000) + b"bye") + frame(True, 8, b"\x03"))
write("frame_reader", "long", b"\xff" + frame(True, 1, b"a" * 300))

# client_command: depth byte, then the text.
for name, cmd in {
    "subscribe": {"type": "subscribe", "id": 1, "room": "dialog:42", "since": {"offset": 17, "epoch": "e"}},
    "subscribe_token": {"type": "subscribe", "id": 1, "room": "dialog:42", "token": "x.y.z"},
    "unsubscribe": {"type": "unsubscribe", "id": 2, "room": "dialog:42"},
    "emit": {"type": "emit", "id": 5, "room": "dialog:42", "event": "typing:start", "data": {"a": [1, {"b": None}]}},
    "refresh": {"type": "refresh", "id": 3, "token": "x.y.z"},
    "ping": {"type": "ping", "id": 9},
    "auth": {"type": "auth", "token": "x.y.z"},
}.items():
    write("client_command", name, b"\x3e" + json.dumps(cmd).encode())
write("client_command", "array", b"\x3e" + b'["ping",31]')

# room_name
for name in ["dialog:42", "user:u1", "org:o1", "x_y.z:w@v-1", "user:", "a" * 128]:
    write("room_name", hashlib.sha1(name.encode()).hexdigest()[:8], name)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(header, claims):
    msg = b64(header) + "." + b64(claims)
    sig = hmac.new(SECRET, msg.encode(), hashlib.sha256).digest()
    return msg + "." + b64(sig)


HS256 = b'{"alg":"HS256","typ":"JWT"}'
conn = json.dumps({"sub": "u1", "org": "o1", "exp": 253402300799, "nbf": 1, "iat": 1}).encode()
sub = json.dumps({"sub": "u1", "room": "dialog:1", "exp": 253402300799}).encode()
# token: mode byte 0 whole token, 1 claims (signed here), 2 header (signed here).
write("token", "whole_connection", b"\x00" + token(HS256, conn).encode())
write("token", "whole_none", b"\x00" + (b64(b'{"alg":"none"}') + "." + b64(conn) + ".").encode())
write("token", "claims_connection", b"\x01" + conn)
write("token", "claims_subscription", b"\x01" + sub)
write("token", "claims_huge", b"\x01" + b'{"sub":"u1","exp":18446744073709551615,"nbf":1e300}')
write("token", "header", b"\x02" + HS256)
write("token", "header_kid", b"\x02" + b'{"alg":"HS256","kid":"k","typ":"JWT","cty":"x"}')


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(number, wire, payload):
    tag = varint(number << 3 | wire)
    return tag + (varint(payload) if wire == 0 else varint(len(payload)) + payload)


def envelope(room, offset, body_field, body):
    return field(1, 2, room) + field(3, 0, offset) + field(4, 2, b"e") + field(body_field, 2, body)


event = field(1, 2, b"message:new") + field(2, 2, b'{"text":"hi"}') + field(3, 2, b"m-1")
write("envelope", "event", envelope(b"dialog:1", 1, 10, event))
write("envelope", "event_gap", envelope(b"dialog:1", 5, 10, event + field(6, 2, b"u2")))
write("envelope", "event_user", envelope(b"user:u1", 1, 10, event))
write("envelope", "emit", envelope(b"dialog:1", 0, 11, field(1, 2, b"typing:start") + field(2, 2, b"{}") + field(3, 2, b"u2")))
write("envelope", "members_removed", envelope(b"dialog:1", 0, 12, field(1, 2, b"u1")))
write("envelope", "disconnect", envelope(b"user:u1", 0, 13, field(1, 2, b"u1") + field(2, 0, 4003)))

# api_body: endpoint byte (0 publish, 1 members, 2 disconnect), then the body.
write("api_body", "publish", b"\x00" + json.dumps({"room": "dialog:1", "event": "message:new", "data": {"x": [1]},
                                                   "id": "m-1", "exclude_user": "u1"}).encode())
write("api_body", "members", b"\x01" + json.dumps({"room": "dialog:1", "add": ["u1", "u2"], "remove": ["u3"]}).encode())
write("api_body", "disconnect", b"\x02" + json.dumps({"user": "u3", "code": 4003}).encode())
write("api_body", "array", b"\x02" + b'["pa2",4000]')

# socketio_packet: mode byte (even: one WebSocket text frame, odd: a polling payload), then the
# Engine.IO packet(s); messages (`4`) carry Socket.IO packets.
for name, frame_text in {
    "connect": '40{"token":"x.y.z"}',
    "connect_ns": '40/admin,{"token":"x.y.z"}',
    "event": '42["subscribe:chat",{"chatId":42}]',
    "event_ack": '4217["roomcast:subscribe",{"room":"dialog:1","since":{"offset":3,"epoch":"e"}}]',
    "event_ns_ack": '42/admin,9["typing:start",{"chatId":"a7"}]',
    "binary_event": '451-["upload",{"_placeholder":true,"num":0}]',
    "ack": '433[{"ok":true}]',
    "binary_ack": '462-/admin,4[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
    "disconnect": "41/admin,",
    "ping_probe": "2probe",
    "upgrade": "5",
}.items():
    write("socketio_packet", "ws_" + name, b"\x00" + frame_text.encode())
write("socketio_packet", "poll_messages", b"\x01" + b"\x1e".join([b'40{"token":"t"}', b'42["m",1]', b"3", b"6"]))
write("socketio_packet", "poll_binary", b"\x01" + b'451-["upload",{"_placeholder":true,"num":0}]\x1ebAQIDBA==')
write("socketio_packet", "poll_close", b"\x01" + b"41\x1e1")
