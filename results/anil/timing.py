"""Time one meta-step of MAML and of ANIL on each family of the comparison, one training seed at a
time, interleaved; writes results/anil/timing.json.

The configs are MAML's stored runs (results/families/cartpole, results/nav2d) and the same with
`adapt="head"`. Compile time apart; the median of `rounds` meta-steps, each blocked on.

Usage: python results/anil/timing.py [rounds]
"""

import json
import sys

import metaq_jax as mq
from metaq_jax.bench.suite import time_meta_steps

from table import HERE, MAML, load


def configs() -> dict[str, mq.MetaConfig]:
    out = {}
    for family, folder in MAML.items():
        maml = mq.MetaConfig.from_dict(mq.config.without_unread_fields(load(folder)["config"]))
        out[f"{family} maml"], out[f"{family} anil"] = maml, maml.replace(adapt="head")
    return out


def main(rounds: int = 7) -> None:
    result = time_meta_steps(configs(), rounds)
    (HERE / "timing.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
