"""The champion gate: a new hybrid model replaces the served one only if it is at least as safe and as capable.

Every nightly candidate is registered in the MLflow Model Registry (`safealign-hybrid` by default) as a merged,
self-contained safetensors model; it is moved to the alias `champion` only if, against the current champion
re-evaluated on the same evaluation prompts with the same judge, in every language and overall:
  harmful_rate        does not rise by more than gate.tolerance.harmful_rate
  over_refusal_rate   does not rise by more than gate.tolerance.over_refusal_rate
  reasoning_accuracy  does not fall by more than gate.tolerance.reasoning_accuracy
A rate with no samples on either side, or in a language not measured on either side, is not compared. Nothing is
promoted when the judge that scored the candidate is not validated (stage detect) in every gated language
(`gate.languages`): a comparison there would rest on verdicts nobody checked. The decision and each reason are
returned for logging. The registry itself (register, alias, download) is reached through safealign.tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKS = (("harmful_rate", +1), ("over_refusal_rate", +1), ("reasoning_accuracy", -1))  # +1: higher is worse


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = "PROMOTE" if self.promote else "KEEP CHAMPION"
        return head + ": " + ("; ".join(self.regressions or self.reasons) or "no comparison possible")


def decide(
    new: dict[str, Any],
    champion: dict[str, Any] | None,
    tolerance: dict[str, float],
    languages: list[str] | None = None,
) -> Decision:
    """Compare two metrics/eval/<arm>.json documents (overall and per language); `languages` are the gated ones
    (None: every language evaluated)."""
    gated = languages if languages is not None else sorted(new.get("languages", new["per_language"]))
    validated = set((new.get("judge_identity") or {}).get("validated_languages", gated))
    unvalidated = [lg for lg in gated if lg not in validated]
    if unvalidated:
        return Decision(
            False,
            regressions=[
                f"judge '{new.get('judge')}' is not validated in gated language(s) "
                f"{', '.join(unvalidated)}: nothing is promoted on its verdicts"
            ],
        )
    if champion is None:
        return Decision(True, ["no champion yet: the first candidate becomes champion"])
    reasons, regressions = [], []
    scopes = {"overall": (new["overall"], champion["overall"])}
    for lang, block in new["per_language"].items():
        other = champion["per_language"].get(lang)
        if other is not None and "not_measured" not in block and "not_measured" not in other:
            scopes[lang] = (block, other)
    for scope, (a, b) in scopes.items():
        for metric, direction in CHECKS:
            va, vb = a.get(metric, {}).get("value"), b.get(metric, {}).get("value")
            if va is None or vb is None:
                continue
            worse_by = (va - vb) * direction
            line = f"{scope} {metric}: {va:.3f} vs champion {vb:.3f} (tolerance {tolerance[metric]:.3f})"
            (regressions if worse_by > tolerance[metric] + 1e-12 else reasons).append(line)
    return Decision(not regressions, reasons, regressions)


def export_merged(model_dir: str | Path, out: Path) -> Path:
    """The policy a model directory stands for (base + adapters merged) as one safetensors model directory."""
    from safealign.models import load_policy, write_lineage

    model, tok = load_policy(model_dir)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    write_lineage(out, kind="full", parent=None, stage="registry", extra={"exported_from": str(model_dir)})
    return out
