"""Print the README's table of families from the protocol.json files `regenerate.sh` writes.

Usage: python results/families/table.py
"""

import json
import pathlib

HERE = pathlib.Path(__file__).parent
CEILINGS = ("oracle", "oracle_learned", "bayes_optimal")


def interval(row, point):
    lo, hi = row["mean_ci"][point]
    return f"{row['mean'][point]:.2f} [{lo:.2f}, {hi:.2f}]"


def line(report):
    rows = report["protocols"]["inner_steps"]["rows"]
    meta, pre, rand = rows["meta-learned"], rows["pretrain"], rows["random_init"]
    ceiling = next((name for name in CEILINGS if name in rows), None)
    best = "–" if ceiling is None else f"{rows[ceiling]['mean'][0]:.2f} ({ceiling})"
    poi = pre["improvement"]
    lo, hi = poi["poi_ci"][3]
    trial = report["protocols"]["trial"]["rows"]
    minutes = sum(report["training"]["train_s"].values()) / 60
    return (f"| `{report['family']}` | {interval(meta, 0)} | {interval(meta, 3)} | {interval(pre, 3)} | "
            f"{interval(rand, 3)} | {best} | {poi['poi'][3]:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{trial['meta-learned']['total']:.2f} / {trial['pretrain']['total']:.2f} | {minutes:.0f} |")


def main():
    print("| family | meta-learned, 0 steps | meta-learned, 3 steps | pretrain, 3 steps | random init, 3 steps "
          "| ceiling | P(meta-learned > pretrain), 3 steps | trial total, meta-learned / pretrain | training min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(HERE.glob("*/protocol.json")):
        print(line(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
