"""Print the README's RL² tables from the protocol.json files `regenerate.sh` writes.

Usage: python results/rl2/table.py
"""

import json
import pathlib

from metaq_jax.protocol import interval_text

HERE = pathlib.Path(__file__).parent
PUBLISHED = {  # Duan et al. 2016 Table 1: random, Gittins, Thompson, UCB1, RL²; SNAIL and MAML (Mishra et al. 2018)
    (10, 5): (5.0, 6.6, 5.7, 6.7, 6.7, None, None), (10, 10): (5.0, 6.6, 5.5, 6.7, 6.7, None, None),
    (10, 50): (5.1, 6.5, 5.2, 6.6, 6.8, None, None), (100, 5): (49.9, 78.3, 74.7, 78.0, 78.7, 79.1, 67.1),
    (100, 10): (49.9, 82.8, 76.7, 82.4, 83.5, 83.5, 70.1), (100, 50): (49.8, 85.2, 64.5, 84.3, 84.9, 85.1, 70.3),
}


def load(name):
    path = HERE / name / "protocol.json"
    return json.loads(path.read_text()) if path.exists() else None


def cell(report, row="meta-learned"):
    if report is None or row not in report["protocols"]["trial"]["rows"]:
        return "not run" if report is None else "–"
    r = report["protocols"]["trial"]["rows"][row]
    return f"{r['total']:.2f} ± {r['total_ci95']:.2f}"


def minutes(report):
    return "" if report is None else f"{report['training']['train_s']['meta'] / 60:.0f}"


def bandits():
    print("| n, k | random | UCB1 | Thompson | Bayes-optimal | oracle (best arm) | RL² (ours, GRU) | SNAIL-style (ours) "
          "| MAML (ours, trial) | PEARL (ours) | MQL (ours) | RL² min | published: Gittins / UCB1 / RL² / SNAIL / MAML |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (n, k), pub in PUBLISHED.items():
        rl2, att, maml = load(f"bandit-k{k}-n{n}"), load(f"attention-bandit-k{k}-n{n}"), load(f"maml-bandit-k{k}-n{n}")
        pearl, mql = load(f"pearl-bandit-k{k}-n{n}"), load(f"mql-bandit-k{k}-n{n}")
        base = rl2 or maml
        published = " / ".join("–" if v is None else f"{v}" for v in (pub[1], pub[3], pub[4], pub[5], pub[6]))
        print(f"| {n}, {k} | {cell(base, 'random_play')} | {cell(base, 'ucb1')} | {cell(base, 'thompson')} | "
              f"{cell(base, 'bayes_optimal')} | {cell(base, 'oracle')} | {cell(rl2)} | {cell(att)} | {cell(maml)} | "
              f"{cell(pearl)} | {cell(mql)} | {minutes(rl2)} | {published} |")


def mdp():
    gru, attention = load("tabular-mdp-n10"), load("attention-tabular-mdp-n10")
    wide = load("attention128-tabular-mdp-n10")
    base = attention or gru
    if base is None:
        return
    vi = base["protocols"]["trial"]["rows"]["oracle"]["total"]  # value iteration on each held-out MDP, per episode × 10
    print("\n| learner | total over 10 episodes | ÷ value iteration | episode 1 → 10 |")
    print("|---|---|---|---|")
    lines = [(gru, "meta-learned", "meta-learned (GRU)"), (attention, "meta-learned", "meta-learned (attention)"),
             (wide, "meta-learned", "meta-learned (attention, torso of 128)")]
    lines += [(base, name, name) for name in ("random_init", "pretrain", "psrl", "certainty_equivalent", "oracle")]
    for report, name, label in lines:
        if report is not None and name in report["protocols"]["trial"]["rows"]:
            row = report["protocols"]["trial"]["rows"][name]
            print(f"| {label} | {row['total']:.1f} ± {row['total_ci95']:.1f} | {row['total'] / vi:.3f} | "
                  f"{row['mean'][0]:.1f} → {row['mean'][-1]:.1f} |")


def maze():
    reports = {name: load(name) for name in ("metamaze-rl2", "metamaze-maml")}
    print("\n| learner | trial of | episode 1 | episode 2 |")
    print("|---|---|---|---|")
    for name, report in reports.items():
        if report is None:
            continue
        for row, r in report["protocols"]["trial"]["rows"].items():
            print(f"| {row} | {name} | {interval_text(r, 0)} | {interval_text(r, 1)} |")


if __name__ == "__main__":
    bandits()
    mdp()
    maze()
