#!/usr/bin/env python3
"""bench/PRESENCE.md from the raw results of bench/presence.sh (its work directory)."""

import json
import pathlib
import statistics
import sys

work, rounds, commit, load = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


def figure(path, name):
    result = json.loads(path.read_text())["results"][0]
    return next(f["value"] for f in result["figures"] if f["name"] == name)


def series(kind, variant, name):
    return [figure(work / f"{kind}-{variant}-{r}.json", name) for r in range(1, rounds + 1)]


def median(values):
    return statistics.median(values)


def row(values, fmt="{:,.0f}"):
    return f"{fmt.format(median(values))} ({', '.join(fmt.format(v) for v in values)})"


out = ["# What presence and events cost: side by side in one run", ""]
out.append(f"`bench/presence.sh` at `{commit}`; {rounds} rounds, the variants alternating, one Redis, release builds.")
out.append(f"Load at the end: `{load.strip()}` (2 shared cores: the load tester and Redis run beside the node).")
out.append("")
out.append("## Connect storm (`connect`, 200 at once)")
out.append("")
off = series("connect", "off", "connections per second")
on = series("connect", "on", "connections per second")
cpu_off = series("connect", "off", "server CPU per connection")
cpu_on = series("connect", "on", "server CPU per connection")
out.append("| variant | connections/s, median (each round) | node CPU per connection, µs |")
out.append("| --- | ---: | ---: |")
out.append(f"| presence=false | {row(off)} | {row(cpu_off, '{:,.1f}')} |")
out.append(f"| presence and the event stream on | {row(on)} | {row(cpu_on, '{:,.1f}')} |")
ratio = median(on) / median(off)
out.append("")
out.append(f"Rate with them on / off: **{ratio:.2f}** (goal: at least 0.70).")
out.append("")
out.append("## Redis calls per connect and per disconnect (`idle`, heartbeats subtracted)")
out.append("")
out.append("| variant | calls per connect | calls per disconnect | idle node, calls/s |")
out.append("| --- | ---: | ---: | ---: |")
for line in (work / "calls.tsv").read_text().splitlines():
    variant, connect, disconnect, base = line.split("\t")
    name = "presence=false" if variant == "off" else "presence and the event stream on"
    out.append(f"| {name} | {connect} | {disconnect} | {base} |")
out.append("")
out.append("A connect joins `user:` and `org:` (SUBSCRIBE and one history script for a room new to the node);")
out.append("with presence on, the user's connection count and online status are one script per 20 ms batch")
out.append("per user (`user_online` written in the same step), and a disconnect adds the offline settle after")
out.append("the grace. Script calls count once each, whatever they run inside.")
out.append("")
out.append("## Broadcast 1 → 1000, 100 B, 1000 publishes, with and without delivery receipts")
out.append("")
plain = series("broadcast", "plain", "deliveries per server CPU-second")
acked = series("broadcast", "receipts", "deliveries per server CPU-second")
p99_plain = series("broadcast", "plain", "delivery latency p99")
p99_acked = series("broadcast", "receipts", "delivery latency p99")
out.append("| variant | deliveries per node CPU-second | delivery p99, ms |")
out.append("| --- | ---: | ---: |")
out.append(f"| no receipts | {row(plain)} | {row(p99_plain, '{:.1f}')} |")
out.append(f"| receipts (`receipt_rooms=org:`, every client acking once per batch read) | {row(acked)} | {row(p99_acked, '{:.1f}')} |")
delivered = [int((work / f"delivered-{r}.txt").read_text()) for r in range(1, rounds + 1)]
out.append("")
out.append(f"Receipts on / off, deliveries per CPU-second: **{median(acked) / median(plain):.2f}**. "
           f"Events in the stream after each receipts run (1000 users acking 1000 events): {', '.join(f'{d:,}' for d in delivered)} "
           "(the coalescing window is 1 s: about one `delivered` per user per second of the run, plus `user_online`/`user_offline`).")
print("\n".join(out))
