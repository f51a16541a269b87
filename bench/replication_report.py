#!/usr/bin/env python3
"""bench/REPLICATION.md from the raw results of bench/replication.sh (its work directory)."""

import json
import pathlib
import statistics
import sys

work, rounds, publishes = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
commit, load = sys.argv[4], sys.argv[5]


def figure(variant, shape, r, name):
    result = json.loads((work / f"{variant}-{shape}-{r}.json").read_text())["results"][0]
    return next(f["value"] for f in result["figures"] if f["name"] == name)


def series(variant, shape, name):
    return [figure(variant, shape, r, name) for r in range(1, rounds + 1)]


def redis_us(variant, shape):
    return [float((work / f"{variant}-{shape}-{r}.redis").read_text()) for r in range(1, rounds + 1)]


def row(values, fmt="{:,.1f}"):
    return f"{fmt.format(statistics.median(values))} ({', '.join(fmt.format(v) for v in values)})"


out = ["# What `redis_wait_replicas` costs: side by side in one run", ""]
out.append(f"`bench/replication.sh` at `{commit}`; {rounds} rounds, the variants alternating, one master")
out.append("and one replica on this machine, release builds, `broadcast 1 → 10`, 100 B, "
           f"{publishes:,} publishes through `/api/publish`.")
out.append(f"Load at the end: `{load.strip()}` (2 shared cores: the load tester, the node, the master and the")
out.append("replica all run here, so a replica's acknowledgement costs a scheduling round more than across a network).")
out.append("")
out.append("Median (each round).")
out.append("")
out.append("| variant | publishes/s, one at a time | Redis master CPU per publish, µs | paced 200/s: last-recipient p50, ms | p99, ms | lost |")
out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
for variant, label in [("async", "`redis_wait_replicas=0` (default)"), ("wait1", "`redis_wait_replicas=1`")]:
    rate = [d / 10 for d in series(variant, "unpaced", "deliveries per second")]
    p50 = series(variant, "paced", "last-recipient latency p50")
    p99 = series(variant, "paced", "last-recipient latency p99")
    lost = sum(series(variant, "unpaced", "lost")) + sum(series(variant, "paced", "lost"))
    out.append(f"| {label} | {row(rate, '{:,.0f}')} | {row(redis_us(variant, 'unpaced'))} | {row(p50, '{:,.2f}')} | "
               f"{row(p99, '{:,.2f}')} | {lost:.0f} |")
a = statistics.median([d / 10 for d in series("async", "unpaced", "deliveries per second")])
w = statistics.median([d / 10 for d in series("wait1", "unpaced", "deliveries per second")])
out.append("")
out.append(f"One publisher's rate with `WAIT 1` / without: **{w / a:.2f}**. Each publish then pays the")
out.append("`WAIT` round trip and the replica's acknowledgement, then one more script call (raise the room's")
out.append("confirmed offset and publish). Replicated publishes have a connection of their own; concurrent ones")
out.append("queue behind each other's `WAIT` there (each `WAIT` covers every write before it).")
print("\n".join(out))
