"""One report per pipeline run: a self-contained HTML file (inline SVG, no scripts, no server) and the same
content as markdown (for the Prefect artifact), built from the DVC metrics the stages wrote.

Sections: headline next to the paper's, per arm (harm, off-topic, over-refusal, language consistency, reasoning,
compute, cost), per language with intervals (table and chart; "not measured" where the judge is not validated or
the model cannot write the language), harmful rate against cumulative compute (the RL safety curves and the
matched-safety comparison), cross-lingual gap, reward-hacking indicators, training signals (each RL stage's reward
update by update, the reward model's held-out accuracy: judge-free), and the judge: its scores on annotated
real answers per language, confusion matrices, agreement with annotations per arm, and inter-annotator kappa.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from safealign import paths

COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
RATES = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")


def collect(root: Path, arms: list[str]) -> dict[str, Any]:
    def load(p: Path) -> Any:
        return json.loads(p.read_text()) if p.exists() else None

    return {
        "eval": {a: m for a in arms if (m := load(root / paths.eval_metrics(a)))},
        "cost": load(root / paths.COST) or {"arms": {}},
        "headline": load(root / paths.HEADLINE) or {},
        "curves": {p.stem: load(p) for p in sorted((root / paths.CURVES).glob("*.json")) if p.stem in arms},
        "detection": load(root / paths.DETECTION),
        "judge": load(root / paths.JUDGE_REPORT),
        "reward": load(root / paths.REWARD_METRICS),
    }


def _ci(block: dict | None, pct: bool = True) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    v, (lo, hi) = block["value"], block.get("ci95") or (None, None)
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.3f}")
    n = f" n={block['n']}" if "n" in block else ""
    return f"{f(v)} [{f(lo)}, {f(hi)}]{n}" if lo is not None else f"{f(v)}{n}"


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    return "n/a" if v is None else fmt.format(v)


def tables(d: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) for every table; shared by the HTML and the markdown renderings."""
    out = []
    h = d["headline"]
    paper = h.get("paper", {})
    ms = h.get("matched_safety", {})
    hyb = ms.get("vs_pure_rl", {}).get("hybrid", {})
    interval = lambda ci: "[" + ", ".join(_num(x, "{:.1%}") for x in ci or [None, None]) + "]"  # noqa: E731
    eq = h.get("equal_compute")
    rows = []
    if eq:
        rows.append(
            [
                f"harmful-rate reduction vs pure RL at equal total training compute ({eq['arm']}, "
                f"{_num(eq.get('compute_ratio_vs_hybrid'), '{:.2f}')}x the hybrid's FLOPs)",
                _num(eq.get("harmful_rate_reduction"), "{:.1%}"),
                interval(eq.get("harmful_rate_reduction_ci95")),
                _num(paper.get("harmful_rate_reduction_vs_pure_rl"), "{:.0%}"),
            ]
        )
    rows += [
        [
            "harmful-rate reduction vs pure RL (configured budgets: the same PPO)",
            _num(h.get("harmful_rate_reduction_vs_pure_rl_configured_budget"), "{:.1%}"),
            interval(h.get("harmful_rate_reduction_configured_budget_ci95")),
            _num(paper.get("harmful_rate_reduction_vs_pure_rl"), "{:.0%}"),
        ],
        [
            "training-compute saving vs pure RL (configured budgets, FLOPs)",
            _num(h.get("compute_saving_vs_pure_rl"), "{:.1%}"),
            "point estimate (deterministic counts)",
            _num(paper.get("compute_saving_vs_pure_rl"), "{:.0%}"),
        ],
        [
            f"compute saving to reach harmful rate {_num(ms.get('target_harmful_rate'), '{:.3f}')} (matched safety)",
            _num(hyb.get("compute_saving_to_target"), "{:.1%}")
            if "compute_saving_to_target_lower_bound" not in hyb
            else "≥ " + _num(hyb["compute_saving_to_target_lower_bound"], "{:.1%}"),
            interval(hyb.get("compute_saving_to_target_ci95")),
            _num(paper.get("compute_saving_vs_pure_rl"), "{:.0%}"),
        ],
    ]
    out.append(
        ("Headline: hybrid vs pure RL", ["figure", "measured", "95% interval", "paper"], rows, hyb.get("note", ""))
    )
    rows = []
    for a, m in d["eval"].items():
        o, c = m["overall"], d["cost"]["arms"].get(a, {})
        rows.append(
            [
                a,
                *(_ci(o.get(k)) for k in RATES),
                _num(c.get("cpu_hours"), "{:.4f}"),
                _num(c.get("flops", 0) / 1e12, "{:.1f}"),
                _num(c.get("usd"), "${:.4f}"),
            ]
        )
    out.append(
        (
            "Per arm (all languages)",
            ["arm", *RATES, "train CPU-h", "train TFLOPs", "train cost"],
            rows,
            "Rates with 95% bootstrap intervals; compute and cost of every "
            "stage that made the arm (reward model included for RL arms).",
        )
    )
    rows = []
    for arm, refs in h.get("comparisons", {}).items():
        for ref, block in refs.items():
            cells = []
            for k in ("harmful_rate", "over_refusal_rate", "reasoning_accuracy"):
                b = block.get(k) or {}
                lo, hi = b.get("ci95") or (None, None)
                cells.append(
                    "n/a"
                    if b.get("value") is None
                    else f"{b['value']:+.2f} [{lo:+.2f}, {hi:+.2f}]{' *' if b.get('excludes_zero') else ''}"
                )
            rows.append([arm, ref.replace("vs_", ""), *cells])
    out.append(
        (
            "Arm minus reference (paired, same prompts)",
            ["arm", "reference", "harmful_rate", "over_refusal_rate", "reasoning_accuracy"],
            rows,
            "* the 95% paired-bootstrap interval excludes zero.",
        )
    )
    langs = sorted({lg for m in d["eval"].values() for lg in m["per_language"]}, key=lambda x: (x != "en", x))
    cell = lambda b, metric: "not measured" if "not_measured" in b else _ci(b.get(metric))  # noqa: E731
    for metric in ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency"):
        rows = [[lg, *(cell(m["per_language"].get(lg, {}), metric) for m in d["eval"].values())] for lg in langs]
        out.append(
            (
                f"{metric} per language",
                ["lang", *d["eval"]],
                rows,
                "Intervals resample items (all languages of an item together). Not measured: the judge is not "
                "validated in that language or the arm writes no usable text there (see metrics/eval/<arm>.json).",
            )
        )
    rows = []
    for a, m in d["eval"].items():
        g = m.get("cross_lingual_gap", {})
        rows.append([a, _ci(g.get("trained")), _ci(g.get("untrained")), _ci(g.get("harmful_rate"), pct=False)])
    out.append(
        (
            "Cross-lingual gap (harmful rate)",
            ["arm", "trained languages", "untrained languages", "untrained - trained"],
            rows,
            "",
        )
    )
    rows = []
    for a, m in d["eval"].items():
        rh = m.get("reward_hacking", {})
        rows.append(
            [
                a,
                _ci(rh.get("rm_safe_judge_harmful_rate")),
                _ci(rh.get("refuse_then_comply_rate")),
                _num(rh.get("mean_response_chars"), "{:.0f}"),
                _num(final_kl(d, a), "{:.3f}"),
            ]
        )
    out.append(
        (
            "Reward-hacking indicators",
            ["arm", "RM says safe, judge says harmful", "refuse-then-comply", "mean response chars", "final KL"],
            rows,
            "",
        )
    )
    out.append(training_signals(d))
    rows = []
    for a, info in ms.get("arms", {}).items():
        rows.append(
            [
                a,
                info["trainer"],
                _num(info["start_harmful_rate"], "{:.0%}"),
                _num(info["end_harmful_rate"], "{:.0%}"),
                _num(info["start_cumulative_flops"] / 1e12, "{:.1f}"),
                _num(info["rl_flops"] / 1e12, "{:.1f}"),
                "yes" if info["reached_target"] else "never",
                _num((info["cumulative_flops_to_target"] or 0) / 1e12 if info["reached_target"] else None, "{:.1f}"),
            ]
        )
    notes = " ".join(f"{a}: {r['note']}" for a, r in ms.get("vs_pure_rl", {}).items() if r.get("note"))
    out.append(
        (
            f"Safety curves: compute to reach harmful rate {_num(ms.get('target_harmful_rate'), '{:.3f}')} "
            f"on the curve slice (n={ms.get('n_prompts', '?')})",
            ["arm", "trainer", "start", "end", "start TFLOPs", "RL TFLOPs", "reached", "TFLOPs to target"],
            rows,
            notes,
        )
    )
    out.extend(judge_tables(d.get("judge")))
    return out


# what each RL trainer's compute record keeps (train/ppo.py, train/grpo.py): its step count and, per logged step,
# the reward and the KL to the reference policy
RL_RECORDS = {"ppo": ("updates", "objective/scores", "objective/kl"), "grpo": ("steps", "reward", "kl")}


def final_kl(d: dict[str, Any], arm: str) -> float | None:
    """The KL to the reference policy at the end of an arm's RL stage (PPO or GRPO), from its compute record."""
    for kind, (_, _, kl) in RL_RECORDS.items():
        history = ((d["cost"].get("stages", {}).get(f"{kind}@{arm}") or {}).get("extra") or {}).get("history")
        if history:
            return history[-1].get(kl)
    return None


def training_signals(d: dict[str, Any]) -> tuple[str, list[str], list[list[str]], str]:
    """The reward each RL stage's policy earned, update by update (from its compute record), and the reward model's
    held-out pairwise accuracy: whether training moved the policy, readable without a judge."""
    rows = []
    for stage, rec in sorted(d["cost"].get("stages", {}).items()):
        kind, _, arm = stage.partition("@")
        if kind not in RL_RECORDS:
            continue
        steps, reward, _ = RL_RECORDS[kind]
        x = rec.get("extra") or {}
        series = [h.get(reward) for h in x.get("history") or []]
        first, last = (series[0], series[-1]) if series else (None, None)
        rows.append(
            [
                arm,
                kind.upper(),
                _num(x.get(steps), "{}"),
                _num(first, "{:.2f}"),
                _num(last, "{:.2f}"),
                _num(None if first is None or last is None else last - first, "{:+.2f}"),
                " ".join(_num(v, "{:.2f}") for v in series) or "n/a",
                _num(final_kl(d, arm), "{:.3f}"),
            ]
        )
    acc = ((d.get("reward") or {}).get("pairwise_accuracy") or {}).get("overall")
    note = (
        "Mean reward of each update's sampled answers to train-split prompts (PPO: the reward model's score; GRPO, "
        "per logging step: the sum of its reward functions): the signal RL maximizes, not a safety measurement. "
        "Reward model, held-out pairwise accuracy "
        f"(safe answer scored above harmful, eval-split items): {_ci(acc, pct=False)}"
        + (f", {acc['clusters']} item clusters." if acc and "clusters" in acc else ".")
    )
    header = ["arm", "trainer", "updates / steps", "first", "last", "last - first", "per update", "final KL"]
    return ("Training signals: reward per update (judge-free)", header, rows, note)


def judge_tables(j: dict[str, Any] | None) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The judge on annotated real answers (judge-test): per language, per candidate, per answer source."""
    if not j:
        return []
    chosen, test, agree = j["chosen"], j["test"], j["agreement"]["per_language"]
    rep = test[chosen]
    rows = []
    for lang, s in rep["per_language"].items():
        v = j["languages"].get(lang, {})
        k = agree.get(lang, {})
        rows.append(
            [
                lang,
                str(s["n"]),
                str(s["harmful"]),
                _ci(s.get("accuracy"), pct=False),
                _ci(s.get("f1"), pct=False),
                _num((s.get("fpr") or {}).get("value"), "{:.2f}"),
                _num(k.get("kappa"), "{:.2f}") + f" (n={k.get('n', 0)})",
                "yes" if v.get("validated") else "no: " + "; ".join(v.get("reasons", [])),
            ]
        )
    t = j["targets"]
    out = [
        (
            f"Judge: {chosen} ({j['settings'].get(chosen)}) on judge-test, per language",
            ["lang", "answers", "harmful", "accuracy", "harmful F1", "FPR", "annotator kappa", "validated"],
            rows,
            f"Targets: accuracy >= {t['accuracy']}, harmful F1 >= "
            f"{t['f1']}, at least {t['min_harmful']} harmful answers. "
            "judge-test holds answers to eval-split prompts only; the judge and its settings were chosen on judge-dev. "
            "Intervals resample items. Kappa: two independent annotation passes.",
        )
    ]
    rows = [
        [
            name,
            _num((r["overall"].get("accuracy") or {}).get("value"), "{:.3f}"),
            _num((r["overall"].get("f1") or {}).get("value"), "{:.3f}"),
            _num((r["overall"].get("fpr") or {}).get("value"), "{:.3f}"),
            str(j["selection_on_dev"].get(name, "not eligible")),
        ]
        for name, r in test.items()
    ]
    out.append(
        (
            "Judge candidates on judge-test (all languages)",
            ["candidate", "accuracy", "harmful F1", "FPR", "rank key on judge-dev"],
            rows,
            "The reward model is scored for reference only: it is what RL optimizes, so it never judges.",
        )
    )
    rows = [
        [
            src,
            str(v["n"]),
            _num(v["annotated_rate"], "{:.3f}"),
            _num(v["judge_rate"], "{:.3f}"),
            _num(v["difference"], "{:+.3f}"),
        ]
        for src, v in rep["by_source"].items()
    ]
    out.append(
        (
            "Judge vs annotations per answer source (judge-test, harmful prompts)",
            ["source", "answers", "annotated harmful rate", "judge's harmful rate", "difference"],
            rows,
            "",
        )
    )
    labels = ["refusal", "partial", "compliance", "off_topic", "helpful"]
    for lang, s in rep["per_language"].items():
        conf = s.get("confusion", {})
        rows = [[a, *(str(conf.get(a, {}).get(x, 0)) for x in labels)] for a in labels if a in conf]
        out.append((f"Confusion ({lang}): annotated (rows) vs judged (columns)", ["annotated", *labels], rows, ""))
    return out


def markdown(d: dict[str, Any]) -> str:
    lines = ["# safealign run report", ""]
    for title, header, rows, note in tables(d):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += (["", f"_{note}_"] if note else []) + [""]
    return "\n".join(lines)


def _svg_bars(d: dict[str, Any], metric: str) -> str:
    """Grouped bars per language, one color per arm, 95% interval whiskers."""
    arms = list(d["eval"])
    langs = sorted({lg for m in d["eval"].values() for lg in m["per_language"]}, key=lambda x: (x != "en", x))
    gw, bw, H, top, left = max(24, 8 * len(arms) + 10), 8, 220, 20, 40
    W = left + gw * len(langs) + 160
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 50}" font-size="11">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + H * (1 - t)
        parts.append(
            f'<line x1="{left}" x2="{left + gw * len(langs)}" y1="{y}" '
            f'y2="{y}" stroke="#ddd"/><text x="4" y="{y + 4}">{t:.0%}</text>'
        )
    for i, lg in enumerate(langs):
        x0 = left + i * gw + 5
        parts.append(f'<text x="{x0}" y="{top + H + 14}">{html.escape(lg)}</text>')
        for j, a in enumerate(arms):
            b = d["eval"][a]["per_language"].get(lg, {}).get(metric) or {}
            v = b.get("value")
            if v is None:
                continue
            x, y = x0 + j * bw, top + H * (1 - v)
            parts.append(
                f'<rect x="{x}" y="{y}" width="{bw - 1}" height="{H * v}" '
                f'fill="{COLORS[j % len(COLORS)]}"><title>{a} {lg}: {v:.2f}</title></rect>'
            )
            lo, hi = b.get("ci95") or (None, None)
            if lo is not None:
                parts.append(
                    f'<line x1="{x + bw / 2}" x2="{x + bw / 2}" '
                    f'y1="{top + H * (1 - hi)}" y2="{top + H * (1 - lo)}" stroke="#222"/>'
                )
    for j, a in enumerate(arms):
        parts.append(
            f'<rect x="{W - 150}" y="{top + 14 * j}" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>'
            f'<text x="{W - 136}" y="{top + 14 * j + 9}">{html.escape(a)}</text>'
        )
    return "".join(parts) + "</svg>"


def _svg_curves(d: dict[str, Any]) -> str:
    """Harmful rate against cumulative training TFLOPs, one line per RL arm, the target as a dashed line."""
    curves = {a: c for a, c in d["curves"].items() if c and c["points"] and c["points"][0]["harmful_rate"] is not None}
    if not curves:
        docs = [c for c in d["curves"].values() if c]
        if any(c.get("judge") for c in docs):  # a judge was loaded, but no curve item is in a validated language
            why = "curve items are scored only in languages where the judge is validated, and none is"
        else:
            why = "curve.items_per_language is 0" if docs else "no RL arm wrote one"
        return f"<p>No safety curves: {why}.</p>"
    xs = [p["cumulative_flops"] / 1e12 for c in curves.values() for p in c["points"]]
    xmax = max(xs) * 1.05 or 1.0
    W, H, left, top = 560, 240, 50, 20
    sx = lambda x: left + (W - left - 160) * x / xmax  # noqa: E731
    sy = lambda y: top + H * (1 - y)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 50}" font-size="11">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{sx(xmax)}" y1="{sy(t)}" y2="{sy(t)}" '
            f'stroke="#ddd"/><text x="8" y="{sy(t) + 4}">{t:.0%}</text>'
        )
    parts.append(f'<text x="{left}" y="{top + H + 30}">cumulative training TFLOPs (0 .. {xmax:.1f})</text>')
    target = d["headline"].get("matched_safety", {}).get("target_harmful_rate")
    if target is not None:
        parts.append(
            f'<line x1="{left}" x2="{sx(xmax)}" y1="{sy(target)}" '
            f'y2="{sy(target)}" stroke="#900" stroke-dasharray="4 3"/>'
        )
    for j, (a, c) in enumerate(curves.items()):
        pts = " ".join(f"{sx(p['cumulative_flops'] / 1e12):.1f},{sy(p['harmful_rate']):.1f}" for p in c["points"])
        col = COLORS[j % len(COLORS)]
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"/>')
        for p in c["points"]:
            parts.append(
                f'<circle cx="{sx(p["cumulative_flops"] / 1e12):.1f}" '
                f'cy="{sy(p["harmful_rate"]):.1f}" r="3" fill="{col}">'
                f"<title>{a} update {p['update']}: {p['harmful_rate']:.2f}</title></circle>"
            )
        parts.append(
            f'<rect x="{W - 150}" y="{top + 14 * j}" width="10" height="10" '
            f'fill="{col}"/><text x="{W - 136}" y="{top + 14 * j + 9}">{html.escape(a)}</text>'
        )
    return "".join(parts) + "</svg>"


def render_html(d: dict[str, Any], title: str = "safealign run report", meta: dict[str, str] | None = None) -> str:
    css = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0 1.5em;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "th{background:#f3f3f3}.note{color:#555;font-size:12px}"
    )
    body = [f"<h1>{html.escape(title)}</h1>"]
    if meta:
        body.append(
            "<p class=note>" + " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in meta.items()) + "</p>"
        )
    for i, (t, header, rows, note) in enumerate(tables(d)):
        body.append(
            f"<h2>{html.escape(t)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
        )
        body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
        body.append("</table>" + (f"<p class=note>{html.escape(note)}</p>" if note else ""))
        if i == 0:
            body.append("<h2>Harmful rate against cumulative training compute</h2>" + _svg_curves(d))
        if t.startswith("harmful_rate per language"):
            body.append(_svg_bars(d, "harmful_rate"))
        if t.startswith("over_refusal_rate per language"):
            body.append(_svg_bars(d, "over_refusal_rate"))
    head = f"<meta charset=utf-8><title>{html.escape(title)}</title><style>{css}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>\n"
