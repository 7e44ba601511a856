"""Print README's result tables (markdown) from the metrics of the last run: the judge on judge-test per language
with kappa, every arm overall, the harmful rate per language ("not measured" where it is not), the headline.

    python tools/results_tables.py [--before REV]   # --before: also each arm's harmful rate at a git revision
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

LANGS = ["en", "zh", "es", "fr", "de", "ru", "ar", "hi", "ja", "bn", "sw", "th"]
ARMS = ["base", "sft_only", "pure_rl", "hybrid", "hybrid_grpo"]


def load(path: str, rev: str | None = None):
    if rev:
        out = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def ci(block: dict | None, digits: int = 2) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    lo, hi = block.get("ci95") or (None, None)
    v = f"{block['value']:.{digits}f}"
    return f"{v} [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else v


def judge_table() -> str:
    j = load("metrics/judge.json")
    rep, agree = j["test"][j["chosen"]], j["agreement"]["per_language"]
    lines = [
        f"Judge `{j['chosen']}` ({j['settings'][j['chosen']]}), judge-test:",
        "",
        "| lang | answers | harmful | accuracy [95% CI] | harmful F1 [95% CI] | FPR | kappa (n) | validated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lang in LANGS:
        s, v, k = rep["per_language"].get(lang), j["languages"].get(lang, {}), agree.get(lang, {})
        if s is None:
            continue
        kappa = "n/a" if k.get("kappa") is None else f"{k['kappa']:.2f} ({k['n']})"
        fpr = (s.get("fpr") or {}).get("value")
        lines.append(
            f"| {lang} | {s['n']} | {s['harmful']} | {ci(s.get('accuracy'))} | {ci(s.get('f1'))} | "
            f"{'n/a' if fpr is None else f'{fpr:.2f}'} | {kappa} | "
            f"{'yes' if v.get('validated') else 'no: ' + '; '.join(v.get('reasons', []))} |"
        )
    o, ko = rep["overall"], j["agreement"]["overall"]
    lines.append(
        f"| all | {o['n']} | {o['harmful']} | {ci(o.get('accuracy'))} | {ci(o.get('f1'))} | "
        f"{o['fpr']['value']:.2f} | {ko['kappa']:.2f} ({ko['n']}) | |"
    )
    lines += ["", "| candidate | accuracy | harmful F1 | FPR |", "|---|---|---|---|"]
    for name, r in j["test"].items():
        lines.append(
            f"| {name} | {ci(r['overall'].get('accuracy'))} | {ci(r['overall'].get('f1'))} | "
            f"{(r['overall'].get('fpr') or {}).get('value') or 0:.2f} |"
        )
    lines += [
        "",
        "| source (judge-test, harmful prompts) | answers | annotated harmful | judge's harmful | difference |",
        "|---|---|---|---|---|",
    ]
    for src, v in rep["by_source"].items():
        lines.append(
            f"| {src} | {v['n']} | {v['annotated_rate']:.3f} | {v['judge_rate']:.3f} | {v['difference']:+.3f} |"
        )
    return "\n".join(lines)


def arms_table(before: str | None) -> str:
    rates = ("harmful_rate", "off_topic_rate", "over_refusal_rate", "language_consistency", "reasoning_accuracy")
    head = "| arm | measured languages | " + " | ".join(rates) + " |" + (" harmful_rate before |" if before else "")
    lines = [head, "|" + "---|" * (len(rates) + 2 + bool(before))]
    for arm in ARMS:
        m = load(f"metrics/eval/{arm}.json")
        if not m:
            continue
        row = f"| {arm} | {len(m['measured_languages'])} | " + " | ".join(ci(m["overall"].get(r)) for r in rates) + " |"
        if before:
            old = load(f"metrics/eval/{arm}.json", before)
            row += f" {ci(old['overall']['harmful_rate']) if old else 'n/a'} |"
        lines.append(row)
    return "\n".join(lines)


def per_language(metric: str) -> str:
    lines = ["| arm | " + " | ".join(LANGS) + " |", "|" + "---|" * (len(LANGS) + 1)]
    for arm in ARMS:
        m = load(f"metrics/eval/{arm}.json")
        if not m:
            continue
        cells = []
        for lang in LANGS:
            b = m["per_language"].get(lang, {})
            v = (b.get(metric) or {}).get("value")
            cells.append("n.m." if "not_measured" in b else ("n/a" if v is None else f"{v:.2f}"))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline() -> str:
    h = load("metrics/headline.json")
    ms = h.get("matched_safety", {}).get("vs_pure_rl", {}).get("hybrid", {})
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    rng = lambda c: "" if not c or c[0] is None else f"[{c[0]:.1%}, {c[1]:.1%}]"  # noqa: E731
    langs, n, items = ", ".join(h.get("languages", [])), h.get("n_prompts"), h.get("n_items")
    rates = f"({h.get('harmful_rate_hybrid')} vs {h.get('harmful_rate_pure_rl')})"
    reduction = f"{pct(h.get('harmful_rate_reduction_vs_pure_rl'))} {rates}"
    matched = f"{pct(ms.get('compute_saving_to_target'))} | {rng(ms.get('compute_saving_to_target_ci95'))}"
    rows = [
        "| figure | measured | 95% interval | paper |",
        "|---|---|---|---|",
        f"| harmful-rate reduction, hybrid vs pure RL ({n} paired prompts, {items} items; {langs}) | {reduction} | "
        f"{rng(h.get('harmful_rate_reduction_ci95'))} | 42% |",
        f"| training-compute saving, configured budgets | {pct(h.get('compute_saving_vs_pure_rl'))} | exact | 37% |",
        f"| compute saving at matched safety | {matched} | 37% |",
    ]
    return "\n".join([*rows, "", ms.get("note", "")])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="git revision whose metrics/eval/<arm>.json give the 'before' column")
    a = ap.parse_args()
    print("## judge\n\n" + judge_table() + "\n\n## arms\n\n" + arms_table(a.before))
    for metric in ("harmful_rate", "off_topic_rate", "language_consistency"):
        print(f"\n## {metric} per language\n\n" + per_language(metric))
    print("\n## headline\n\n" + headline())
