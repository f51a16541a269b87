#!/usr/bin/env python3
"""Writes bench/SOAK.md from the JSON results of bench/soak.sh (churn-*.json, slow-*-*.json,
cycles.json in --out) and exits 1 when roomcast misses one of its goals. Only bench/soak.sh
calls it."""
import argparse
import glob
import json
import os
import sys

TARGETS = [("rc", "roomcast"), ("sio", "Socket.IO (redis-adapter)"), ("siox", "socketioxide (socketioxide-redis)")]


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)["results"]
    return {fig["name"]: fig["value"] for fig in results[0]["figures"]}


def num(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def main():
    a = argparse.ArgumentParser()
    for flag in ["out", "markdown", "events", "date", "commit", "uptime-before", "uptime-after", "wall", "machine",
                 "params", "slow-params", "builds"]:
        a.add_argument("--" + flag, required=True)
    args = a.parse_args()
    with open(args.events) as f:
        events = [line.strip() for line in f if line.strip()]
    goals = []  # (goal, measured, met)
    md = []
    md.append("# Soak: churn with a node and Redis killed, a slow reader, a million connect cycles")
    md.append("")
    md.append(f"Run by `make soak` (`bench/soak.sh`) on {args.date}, commit `{args.commit}`, in {int(args.wall) // 60} min "
              f"{int(args.wall) % 60} s ({args.builds}). Machine: {args.machine}, shared with other work: "
              "the load average below is the whole machine's.")
    md.append("")
    md.append(f"- load before: `{args.uptime_before.strip()}`")
    md.append(f"- load after: `{args.uptime_after.strip()}`")
    md.append(f"- raw results: `{args.out}/`")
    md.append("")

    md.append("## Churn, three nodes per target on one Redis (AOF on) behind nginx round-robin")
    md.append("")
    md.append(f"{args.params}. Clients connect through nginx; messages are published to the three nodes "
              "directly (each dialog's in order, retried on the next node until one answers 200). "
              "roomcast clients resubscribe with `since` after every reconnect; the peers have no recovery, "
              "their clients only join their rooms again.")
    md.append("")
    md.append("| target | delivered / expected | delivered (unique) | expected | duplicates | reordered | recovered:false "
              "| reconnects | failed connects | publish retries | never acknowledged |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    churn_notes = []
    for key, name in TARGETS:
        r = load(os.path.join(args.out, f"churn-{key}.json"))
        if r is None:
            continue
        never = r["publishes never acknowledged"]
        if never > 0:
            total = never + r["messages acknowledged"]
            churn_notes.append(f"{name}: {num(never)} of {num(total)} publishes were answered by no node within "
                               "60 s of their turn; only acknowledged messages are expected, so its "
                               "delivered / expected covers the other "
                               f"{num(r['messages acknowledged'])}.")
        rf = r.get("recovered:false")
        md.append(f"| {name} | {num(r['delivered / expected'], 2)}% | {num(r['delivered (unique)'])} "
                  f"| {num(r['expected deliveries'])} | {num(r['duplicates'])} | {num(r['reordered'])} "
                  f"| {num(rf) if rf is not None else 'n/a'} | {num(r['reconnects'])} | {num(r['failed connects'])} "
                  f"| {num(r['publish retries'])} | {num(r['publishes never acknowledged'])} |")
        if key == "rc":
            goals.append(("churn: 100% delivered", f"{r['delivered / expected']:.2f}%",
                          r["delivered (unique)"] >= r["expected deliveries"] and r["expected deliveries"] > 0))
            goals.append(("churn: no duplicates", num(r["duplicates"]), r["duplicates"] == 0))
            goals.append(("churn: no reordering", num(r["reordered"]), r["reordered"] == 0))
            goals.append(("churn: no recovered:false", num(rf), rf == 0))
    md.append("")
    md.append("Expected: every message a node acknowledged (200), once for each member of its dialog. "
              "The peers have no message ids: a publish retried after a node died mid-request can be "
              "delivered twice there; roomcast deduplicates it by id.")
    for note in churn_notes:
        md.append("")
        md.append(note)
    md.append("")
    md.append("What happened during the runs:")
    md.append("")
    for e in events:
        md.append(f"- {e}")
    died = [e for e in events if "EXITED" in e]
    goals.append(("no roomcast process dies on its own", "none" if not any(e.startswith("roomcast") for e in died)
                  else "see above", not any(e.startswith("roomcast") for e in died)))
    md.append("")

    md.append("## A slow reader in a busy room")
    md.append("")
    md.append(f"`broadcast` on one node per target (no Redis): {args.slow_params}. The slow readers are members "
              "of the room that never read their socket; the figures are the other members' per-delivery latency.")
    md.append("")
    md.append("| target | p50 without | p50 with | p99 without | p99 with | p99 with / without | lost (others) "
              "| deliveries/s with |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    slow_notes = []
    for key, name in TARGETS:
        files = sorted(glob.glob(os.path.join(args.out, f"slow-{key}-*.json")),
                       key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
        if len(files) != 2:
            continue
        base, slow = load(files[0]), load(files[1])
        name = name.split(" (")[0]  # one node, no Redis adapter
        ratio = slow["delivery latency p99"] / max(base["delivery latency p99"], 1e-9)
        md.append(f"| {name} | {num(base['delivery latency p50'], 2)} ms | {num(slow['delivery latency p50'], 2)} ms "
                  f"| {num(base['delivery latency p99'], 2)} ms | {num(slow['delivery latency p99'], 2)} ms "
                  f"| {ratio:.2f}x | {num(slow['lost'])} | {num(slow['deliveries per second'])} |")
        if key == "rc":
            goals.append(("slow reader: others' p99 within 1.2x", f"{ratio:.2f}x", ratio <= 1.2))
        if base["delivery latency p50"] > 1000:
            slow_notes.append(f"{name} did not keep up with the publish rate even without slow readers "
                              f"(p50 {base['delivery latency p50'] / 1000:.1f} s, "
                              f"{num(base['deliveries per second'])} deliveries/s): its ratio says nothing "
                              "about slow readers.")
    for note in slow_notes:
        md.append("")
        md.append(note)
    md.append("")

    md.append("## Connect/disconnect cycles against one roomcast node")
    md.append("")
    c = load(os.path.join(args.out, "cycles.json"))
    if c is not None:
        md.append("| cycles/s | failed cycles | RSS after the warm-up | RSS at the end | growth |")
        md.append("| ---: | ---: | ---: | ---: | ---: |")
        md.append(f"| {num(c['cycles per second'])} | {num(c['failed cycles'])} | {num(c['RSS after warm-up'], 2)} MiB "
                  f"| {num(c['RSS at the end'], 2)} MiB | {c['RSS growth']:+.2f}% |")
        goals.append(("cycles: RSS growth within 10%", f"{c['RSS growth']:+.2f}%", c["RSS growth"] <= 10.0))
        md.append("")

    md.append("## roomcast's goals")
    md.append("")
    md.append("| goal | measured | met |")
    md.append("| --- | ---: | --- |")
    for goal, measured, met in goals:
        md.append(f"| {goal} | {measured} | {'yes' if met else '**no**'} |")
    md.append("")
    with open(args.markdown, "w") as f:
        f.write("\n".join(md))
    missed = [g for g, _, met in goals if not met]
    if missed:
        print("soak: roomcast missed: " + "; ".join(missed), file=sys.stderr)
        return 1
    print("soak: roomcast met every goal", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
