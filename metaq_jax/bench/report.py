"""The suite's result as markdown tables."""


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _ms(spread: dict) -> str:
    """`median [min–max]` in milliseconds."""
    return f"{1e3 * spread['median']:.0f} [{1e3 * spread['min']:.0f}–{1e3 * spread['max']:.0f}]"


def _percent_of_rate(config: dict, seconds: float, result: dict) -> float:
    """The analytic FLOPs of a measured config per second, as a % of the run's matmul rate."""
    return 100 * config["flops"] / seconds / result["matmul_flops_per_s"]


def machine_line(m: dict) -> str:
    """One line naming the machine, its load and the versions, from `suite.machine()`.

    Args:
      m: `suite.machine()`'s dict.

    Returns:
      `"Machine: ..."`.
    """
    return (f"Machine: {m['processor']}, {m['cpus']} CPUs ({m['device']}), load average "
            f"{', '.join(f'{x:.2f}' for x in m['load_average'])} at start, {m['date']}; python {m['python']}, "
            f"jax {m['jax']}, flax {m['flax']}, gymnax {m['gymnax']}, gymnasium {m['gymnasium']}, "
            f"torch {m['torch']}.")


def markdown(result: dict) -> str:
    """Summary, meta-step, memory, environment and torch tables of one `run_suite` result.

    Args:
      result: the dict `run_suite` returns (or its JSON, read back).

    Returns:
      The tables and notes as one markdown string.
    """
    lines = [machine_line(result["machine"]), ""]
    lines += ["| summary | value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in result["summary"].items() if not isinstance(v, dict)]
    if "gate_max_rel_error" in result:
        lines += ["", "Correctness gate, max |Δ| / max |g| vs the PyTorch reference: " +
                  ", ".join(f"{a} {e:.1e}" for a, e in result["gate_max_rel_error"].items()) +
                  "; vs each peer (maml, on 2 tasks): " +
                  ", ".join(f"{p} {e:.1e}" for p, e in result["peer_gate_max_rel_error"].items())]
    lines += ["", f"Attainable fp32 rate (2048³ matmul): {result['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s", "",
              "| algo | T | K | meta-step ms [range] | meta-steps/s | tasks/s | env steps/s | collect ms | "
              "learn ms | compile s | GFLOP | XLA's GFLOP | % of matmul rate | temp MiB | peak MiB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["configs"]:
        flops = c["flops"]
        peak = _percent_of_rate(c, c["step_s"]["median"], result)
        temp, peak_mib = (None if c[k] is None else c[k] / 2**20 for k in ("temp_bytes", "peak_bytes"))
        lines.append(f"| {c['algo']} | {c['num_tasks']} | {c['inner_steps']} | {_ms(c['step_s'])} | "
                     f"{c['meta_steps_per_s']:.3g} | {c['tasks_per_s']:.3g} | {c['env_steps_per_s']:.3g} | "
                     f"{_ms(c['collect_s'])} | {_ms(c['learn_s'])} | {c['compile_s']:.1f} | {flops / 1e9:.2f} | "
                     f"{_fmt(None if c['xla_flops'] is None else c['xla_flops'] / 1e9)} | "
                     f"{peak:.1f} | {_fmt(temp)} | {_fmt(peak_mib)} |")
    sharded, plan = [c for c in result["configs"] if c["devices"] > 1], result["plan"]
    if sharded:
        lines += ["", "Fastest setting where the task axis was also sharded over every device (the tables' "
                  "ratios use it):", "", "| algo | T | K | devices | meta-step ms [range] | env steps/s | "
                  "% of matmul rate |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {c['algo']} | {c['num_tasks']} | {c['inner_steps']} | {c['devices']} | {_ms(c['best_step_s'])} | "
                  f"{c['best_env_steps_per_s']:.3g} | "
                  f"{_percent_of_rate(c, c['best_step_s']['median'], result):.1f} |"
                  for c in sharded]
    lines += ["", f"XLA temp MiB at T={result['plan']['main_tasks']}, K={result['plan']['memory_inner_steps']}: " + ", ".join(
        f"{k} {_fmt(None if v is None else v / 2**20)}" for k, v in result["temp_bytes_k20"].items())]
    if "learners" in result:
        lines += ["", f"Every learner on the learners' workload (tabular-mdp, T={plan['main_tasks']} × "
                  f"M={plan['num_envs']}; gradient: 20-step support and query, K=1; memory: one 2-episode trial; "
                  "latent: one episode, one TD step on replay; state MiB: the whole learner state, and in "
                  "brackets its own part, e.g. pearl's replay):",
                  "", "| learner | kind | meta-step ms [range] | env steps/s | compile s | state MiB |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {row['kind']} | {_ms(row['step_s'])} | {row['env_steps_per_s']:.3g} | "
                  f"{row['compile_s']:.1f} | {row['state_bytes'] / 2**20:.2f} "
                  f"[{row['learner_state_bytes'] / 2**20:.2f}] |" for name, row in result["learners"].items()]
    lines += ["", f"Peak resident memory of the whole benchmark process: {result['max_rss_mib']:.0f} MiB."]
    lines += ["", "| envs | " + " | ".join(next(iter(result["envs"].values()))) + " |",
              "|---:|" + "---:|" * len(next(iter(result["envs"].values())))]
    for n, row in result["envs"].items():
        lines.append(f"| {n} | " + " | ".join(_fmt(v) for v in row.values()) + " |")
    if result["torch_peers"]:
        lines += ["", f"| contender (so, T={plan['torch_tasks'] or plan['main_tasks']}, K={plan['main_inner_steps']}; "
                  "`/collect`, `/learn`: the parts alone) | ms [range] |", "|---|---:|"]
        lines += [f"| {k} | {_ms(v)} |" for k, v in result["torch_peers"]["times"].items()]
        lines += ["", "torch.compile, first meta-step (compiling) and what failed: " + "; ".join(
            f"{name} {row['first_step_s']:.1f} s" + (f" ({row['compile_error']})" if "compile_error" in row else "")
            for name, row in result["torch_peers"]["compile"].items())]
    return "\n".join(lines)
