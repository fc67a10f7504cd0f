"""Medians, ratios, target checks, and the JSON / Markdown report."""
import json
import os
import shutil
import statistics

import dnsserve
import syscalls
from catalog import DNS_ROWS, METRICS, ROWS, TARGETS

REF = "docker-proxy"
CEIL = "direct"


def summarise(runs, forwarders):
    """runs[metric][fwd] = [dict per round] -> per-row stats and ratios."""
    rows = {}
    for key, metric, field, _label, _unit, _better, _fmt in ROWS:
        per = {}
        for fwd in forwarders:
            vals = [r[field] for r in runs.get(metric, {}).get(fwd, [])
                    if r.get("value") is not None and r.get(field) is not None]
            if vals:
                per[fwd] = {"median": statistics.median(vals), "min": min(vals),
                            "max": max(vals), "n": len(vals)}
        for fwd, st in per.items():
            for ref, name in ((REF, "vs_docker_proxy"), (CEIL, "vs_direct")):
                base = per.get(ref, {}).get("median")
                st[name] = st["median"] / base if base else None
        if per:
            rows[key] = per
    rows.update(dnsserve.summarise(runs))     # per DNS server, not forwarder
    return rows


def _median(rows, key, fwd):
    return rows.get(key, {}).get(fwd, {}).get("median")


def check_targets(rows):
    out = []
    for label, kind, args in TARGETS:
        measured, need, status = None, None, "n/a"
        if kind == "ratio":
            key, other, need = args
            b, o = _median(rows, key, "berth"), _median(rows, key, other)
            if b is not None and o:
                measured = b / o
        elif kind == "cpu":
            key, other, need = args
            b, o = _median(rows, key, "berth"), _median(rows, key, other)
            if b and o is not None:
                measured = o / b
        elif kind == "inverse":
            other_key, berth_key, other, need = args
            b, o = _median(rows, berth_key, "berth"), _median(rows, other_key, other)
            if b and o is not None:
                measured = o / b
        elif kind in ("below", "atmost"):
            key, need = args
            measured = _median(rows, key, "berth")
        if measured is not None:
            ok = measured < need if kind == "below" else \
                measured <= need if kind == "atmost" else measured >= need
            status = "PASS" if ok else "FAIL"
        out.append({"target": label, "kind": kind, "row": args[0],
                    "measured": measured,
                    "need": need, "status": status})
    return out


def _fmt(fmt, v):
    return "–" if v is None else fmt.format(v)


def _ratio(v):
    return "–" if v is None else "%.2f×" % v


def _med(runs, field):
    vals = [r[field] for r in runs if r.get("value") is not None
            and r.get(field) is not None]
    return statistics.median(vals) if vals else None


def bottleneck(doc):
    """Median % busy of the forwarder (of one core) / of the load CPU."""
    fwds = doc["forwarders"]
    lines = ["", "## Who was the bottleneck", "",
             "Median busy % during each traffic run: the forwarder's processes "
             "(of one core) / the load-generator+backend CPU. When the second "
             "figure is near 100 the rate is capped by the load side, not the "
             "forwarder: then compare the *CPU per operation* rows, and the "
             "'per forwarder CPU' targets.", "",
             "| metric | " + " | ".join(fwds) + " |", "|---|" + "---|" * len(fwds)]
    any_row = False
    for metric in ("conn", "keepalive", "tput1", "tput4", "udp"):
        runs = doc["runs"].get(metric)
        if not runs:
            continue
        cells = []
        for fwd in fwds:
            f = _med(runs.get(fwd, []), "fwd_cpu_pct")
            lo = _med(runs.get(fwd, []), "load_cpu_pct")
            cells.append("%s / %s" % ("–" if f is None else "%.0f" % f,
                                      "–" if lo is None else "%.0f" % lo))
        lines.append("| %s | %s |" % (metric, " | ".join(cells)))
        any_row = True
    return lines if any_row else []


def markdown(doc):
    fwds = doc["forwarders"]
    rows = doc["summary"]
    f = doc["facts"]
    n_ports = doc["config"]["ports"]
    n_idle = doc["config"]["idle_connections"]
    out = ["# berth benchmark — %s" % doc["started"], "",
           "%s mode, %d round(s), %ss per traffic measurement; %s. "
           "Cells: median, then ratio to docker-proxy (`dp`) and to no "
           "forwarder (`direct`) from this same run. N = %d ports; idle = %d "
           "connections." % ("quick" if doc["config"]["quick"] else "full",
                             doc["config"]["rounds"], doc["config"]["duration"],
                             doc["config"]["pinning"], n_ports, n_idle), ""]
    out.append("| metric | unit | " + " | ".join(fwds) + " |")
    out.append("|---|---|" + "---|" * len(fwds))
    for key, _m, _f, label, unit, better, fmt in ROWS:
        if key not in rows:
            continue
        cells = []
        for fwd in fwds:
            st = rows[key].get(fwd)
            if not st:
                cells.append("–")
                continue
            c = _fmt(fmt, st["median"])
            extra = []
            if fwd != REF and st.get("vs_docker_proxy") is not None:
                extra.append("%s dp" % _ratio(st["vs_docker_proxy"]))
            if fwd != CEIL and st.get("vs_direct") is not None:
                extra.append("%s direct" % _ratio(st["vs_direct"]))
            if extra:
                c += " (" + ", ".join(extra) + ")"
            cells.append(c)
        arrow = "↑" if better == "high" else "↓"
        label = label.replace("N ", "%d " % n_ports)
        out.append("| %s %s | %s | %s |" % (label, arrow, unit, " | ".join(cells)))
    out += ["", "↑ higher is better, ↓ lower is better. `–`: not measured, "
            "not applicable, or every run failed (see errors below)."]
    out += dnsserve.markdown(doc)
    out += syscalls.markdown(doc) + [""]
    out += ["## Targets for berth (informational; never fail the run)", "",
            "| target | measured | need | result |", "|---|---|---|---|"]
    for t in doc["targets"]:
        unit = ""
        absolute = t["kind"] in ("below", "atmost")
        if absolute:
            unit = " " + {r[0]: r[4] for r in ROWS + DNS_ROWS}.get(t["row"], "")
        m = "–" if t["measured"] is None else (
            "%.2f×" % t["measured"] if not absolute
            else "%.2f%s" % (t["measured"], unit))
        need = ("< %g%s" % (t["need"], unit)) if t["kind"] == "below" \
            else ("≤ %g%s" % (t["need"], unit)) if t["kind"] == "atmost" \
            else ("≥ %g×" % t["need"])
        out.append("| %s | %s | %s | **%s** |" % (
            t["target"].replace("N ports", "%d ports" % n_ports), m, need, t["status"]))
    out += bottleneck(doc)
    if doc["config"]["quick"]:
        out += ["", "_Quick mode: one short round and %d ports; the memory "
                "targets are defined for 1,000 ports._" % n_ports]
    out += ["", "## Spread over rounds (min – max)", "",
            "| metric | " + " | ".join(fwds) + " |", "|---|" + "---|" * len(fwds)]
    for key, _m, _f, label, _u, _b, fmt in ROWS:
        if key not in rows or key in ("ports_procs", "ports_start", "idle_n"):
            continue
        cells = []
        for fwd in fwds:
            st = rows[key].get(fwd)
            cells.append("–" if not st else "%s – %s (n=%d)" % (
                _fmt(fmt, st["min"]), _fmt(fmt, st["max"]), st["n"]))
        out.append("| %s | %s |" % (label.replace("N ", "%d " % n_ports),
                                    " | ".join(cells)))
    if doc["errors"] or doc["skipped"]:
        out += ["", "## Errors and skipped forwarders", ""]
        for name, why in doc["skipped"].items():
            out.append("- skipped **%s**: %s" % (name, why))
        for e in doc["errors"]:
            out.append("- %s" % e)
    out += ["", "## Machine", ""]
    for k in ("cpus", "cpu_model", "kernel", "os", "memory", "loadavg_start",
              "loadavg_end", "pinning"):
        if k in f:
            out.append("- %s: %s" % (k, f[k]))
    out.append("- versions: " + "; ".join(
        "%s %s" % (k, v) for k, v in sorted(f.get("versions", {}).items())))
    out += ["- runtime: %.0f s" % doc["runtime_s"], "",
            "Raw runs, medians and ratios: `%s`." % os.path.basename(doc["json_path"]),
            ""]
    return "\n".join(out)


def write(doc, outdir, stamp):
    os.makedirs(outdir, exist_ok=True)
    doc["json_path"] = os.path.join(outdir, stamp + ".json")
    with open(doc["json_path"], "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=False, default=str)
        fh.write("\n")
    md = markdown(doc)
    md_path = os.path.join(outdir, stamp + ".md")
    with open(md_path, "w") as fh:
        fh.write(md)
    shutil.copyfile(md_path, os.path.join(outdir, "latest.md"))
    return doc["json_path"], md_path, md


def metric_list(arg):
    from catalog import ALIASES
    if not arg or arg == "all":
        return list(METRICS)
    out = []
    for m in arg.split(","):
        m = m.strip()
        for x in ALIASES.get(m, [m]):
            if x not in METRICS:
                raise SystemExit("unknown metric %r (known: %s; aliases: %s)" % (
                    x, ", ".join(METRICS), ", ".join(ALIASES)))
            if x not in out:
                out.append(x)
    return out
