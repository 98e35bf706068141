"""Time one meta-step of each learner of the latent comparison, on its family and config, one
learner (one training seed) at a time, the learners interleaved; writes results/latent/timing.json.

The configs are those the protocol.json files of the comparison hold (maml's from its stored run).
Compile time apart; the median of `rounds` meta-steps, each blocked on.

Usage: python results/latent/timing.py [rounds]
"""

import json
import sys

import metaq_jax as mq
from metaq_jax.bench.suite import time_meta_steps

from table import HERE, LATENT, MAML, load


def configs() -> dict[str, mq.MetaConfig]:
    out = {}
    for family, folder in MAML.items():
        for algo, report in [("maml", load(folder)), *((a, load(HERE / f"{family}-{a}")) for a in LATENT)]:
            if report is not None:
                out[f"{family} {algo}"] = mq.MetaConfig.from_dict(mq.config.without_unread_fields(report["config"]))
    return out


def main(rounds: int = 5) -> None:
    result = time_meta_steps(configs(), rounds)
    (HERE / "timing.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
