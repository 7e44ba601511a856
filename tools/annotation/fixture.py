"""tests/fixtures/labeled_real: the annotated real answers (data/labeled_real) to the items of the test fixture's
benchmark slice (tests/fixtures/benchmark), so the tests run on real annotations, not hand-made ones.

    python tools/annotation/fixture.py
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures"

for lang in ("en", "zh"):
    ids = {json.loads(line)["id"] for line in (FIXTURE / "benchmark" / f"{lang}.jsonl").open()}
    rows = [line for line in (ROOT / "data" / "labeled_real" / f"{lang}.jsonl").open() if json.loads(line)["id"] in ids]
    (FIXTURE / "labeled_real" / f"{lang}.jsonl").write_text("".join(rows))
    splits = [json.loads(r)["judge_split"] for r in rows]
    print(lang, len(rows), {s: splits.count(s) for s in ("train", "dev", "test")})
