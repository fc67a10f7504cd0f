"""PNG bar charts of the medians (min-max whiskers), one per table row.

Uses Debian's python3-matplotlib; without it, gnuplot; without either, no
charts (the JSON and Markdown reports do not depend on them).
"""
import os
import shutil
import subprocess

import syscalls
from catalog import ROWS

CHART_ROWS = ["conn", "keepalive", "keepalive_p99", "tput1", "tput4", "cpu1",
              "cpu4", "udp", "udp_loss", "ports_rss", "ports_pss", "idle"]
COLOURS = {"berth": "#1f77b4", "docker-proxy": "#7f7f7f", "direct": "#2ca02c"}


def _series(doc, key):
    row = doc["summary"].get(key, {})
    names = [f for f in doc["forwarders"] if f in row]
    return names, [row[f] for f in names]


def _title(key, doc):
    for k, _m, _f, label, unit, better, _fmt in ROWS:
        if k == key:
            label = label.replace("N ", "%d " % doc["config"]["ports"])
            return "%s (%s, %s is better)" % (label, unit,
                                              "higher" if better == "high" else "lower")
    return key


def _matplotlib(doc, outdir, stamp):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for key in CHART_ROWS:
        names, stats = _series(doc, key)
        if not names:
            continue
        med = [s["median"] for s in stats]
        err = [[m - s["min"] for m, s in zip(med, stats)],
               [s["max"] - m for m, s in zip(med, stats)]]
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
        bars = ax.bar(names, med, yerr=err, capsize=4,
                      color=[COLOURS.get(n, "#ff7f0e") for n in names])
        for b, s in zip(bars, stats):
            r = s.get("vs_docker_proxy")
            if r is not None:
                ax.annotate("%.2f× dp" % r, (b.get_x() + b.get_width() / 2,
                                             b.get_height()),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_title(_title(key, doc), fontsize=10)
        ax.margins(y=0.15)
        fig.tight_layout()
        path = os.path.join(outdir, "%s-%s.png" % (stamp, key))
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths + syscalls.charts(doc, outdir, stamp, plt)


def _gnuplot(doc, outdir, stamp):
    paths = []
    for key in CHART_ROWS:
        names, stats = _series(doc, key)
        if not names:
            continue
        data = "\n".join('"%s" %g' % (n, s["median"]) for n, s in zip(names, stats))
        path = os.path.join(outdir, "%s-%s.png" % (stamp, key))
        script = ("set terminal png size 700,360; set output '%s';"
                  "set style data histograms; set style fill solid;"
                  "set title '%s'; set yrange [0:*]; unset key;"
                  "plot '-' using 2:xtic(1)\n%s\ne\n" % (
                      path, _title(key, doc).replace("'", ""), data))
        subprocess.run(["gnuplot"], input=script.encode(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths.append(path)
    return paths


def draw(doc, outdir, stamp):
    """Returns (paths, note)."""
    try:
        return _matplotlib(doc, outdir, stamp), "matplotlib"
    except ImportError:
        pass
    if shutil.which("gnuplot"):
        try:
            return _gnuplot(doc, outdir, stamp), "gnuplot"
        except (OSError, subprocess.CalledProcessError) as e:
            return [], "gnuplot failed: %s" % e
    return [], "no charts: neither python3-matplotlib nor gnuplot installed"
