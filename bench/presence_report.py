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
out.append("Counted as Redis counts them (`INFO commandstats`): a script call and each command it runs. A")
out.append("connect joins `user:` and `org:` (SUBSCRIBE, and a history script for a room new to the node).")
out.append("Presence adds one script per user per 20 ms batch at connect (its count, the online status and")
out.append("`user_online` in one step: 1 call running 8 commands) and, at disconnect, that script again plus")
out.append("the offline settle after the grace (with `user_offline`), run by a sweep.")
out.append("")
out.append("## Broadcast 1 → 1000, 100 B, 1000 publishes, with and without delivery receipts")
out.append("")
plain = series("broadcast", "plain", "deliveries per server CPU-second")
acked = series("broadcast", "receipts", "deliveries per server CPU-second")
batch = series("broadcast", "batch", "deliveries per server CPU-second")
p99 = {v: series("broadcast", v, "delivery latency p99") for v in ("plain", "receipts", "batch")}
out.append("| variant | deliveries per node CPU-second | delivery p99, ms | events in the stream after the run |")
out.append("| --- | ---: | ---: | ---: |")
def stream(v):
    return ", ".join(f"{int((work / f'delivered-{v}-{r}.txt').read_text()):,}" for r in range(1, rounds + 1))
out.append(f"| no receipts | {row(plain)} | {row(p99['plain'], '{:.1f}')} | |")
out.append(f"| receipts, every client acking at most every 200 ms (the JS client's default) | {row(acked)} | {row(p99['receipts'], '{:.1f}')} | {stream('receipts')} |")
out.append(f"| receipts, every client acking after every batch it reads (worst case) | {row(batch)} | {row(p99['batch'], '{:.1f}')} | {stream('batch')} |")
out.append("")
out.append(f"Receipts on / off, deliveries per CPU-second: **{median(acked) / median(plain):.2f}** at the client's pace, "
           f"**{median(batch) / median(plain):.2f}** acking every batch. The gateway coalesces one user's acks in a room "
           "over `receipt_window` (1 s): the stream gets about one `delivered` per user per second of the run, whatever the ack rate.")
print("\n".join(out))
