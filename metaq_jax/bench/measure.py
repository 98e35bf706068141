"""Timing and XLA statistics: the measuring instruments of the benchmark suite."""

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each `fn()` over `rounds` rounds, run A B C A B C ... after one warm-up round.

    Interleaving makes every contender share the machine's drift and noise; each result is
    blocked on (`jax.block_until_ready`) so asynchronous dispatch is not mistaken for speed.

    Args:
      fns: `name -> fn`, each a no-argument callable.
      rounds: timed rounds.

    Returns:
      `name -> [rounds]` wall seconds of each call (the warm-up round left out).
    """
    times = {name: [] for name in fns}
    for i in range(rounds + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            if i:
                times[name].append(time.perf_counter() - start)
    return times


def spread(times: list[float]) -> dict[str, float]:
    """Median and range of repeated timings, in seconds.

    Args:
      times: at least one timing.

    Returns:
      `{"median", "min", "max", "n"}`.
    """
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def compile_timed(fn: Callable, *args: Any) -> tuple[jax.stages.Compiled, float]:
    """`jax.jit(fn)` compiled for `args`, and the seconds lowering and compiling took.

    Args:
      fn: the function to compile.
      *args: example arguments; the compiled call takes arguments of the same shapes.

    Returns:
      `(compiled, seconds)`.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def xla_stats(compiled: jax.stages.Compiled) -> dict[str, float | None]:
    """XLA's temp (scratch) bytes, peak bytes and FLOP count of one compiled call.

    Peak bytes are arguments + outputs + temp (less aliased buffers). XLA counts a loop's body once whatever its trip count (a `lax.scan` of length 10 reports
    the FLOPs of length 1), so `xla_flops` undercounts the scanned rollouts and inner steps;
    `metaq_jax.bench.suite.analytic_flops` gives the full count.

    Args:
      compiled: a compiled call, e.g. from `compile_timed`.

    Returns:
      `{"temp_bytes", "peak_bytes", "xla_flops"}`, each None where XLA does not report it.
    """
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # a list per device in older jax
    peak = None if memory is None else int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                                            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    return {"temp_bytes": None if memory is None else int(memory.temp_size_in_bytes), "peak_bytes": peak,
            "xla_flops": None if not cost else float(cost.get("flops", 0.0))}


def matmul_rate(n: int = 2048, rounds: int = 5) -> float:
    """This machine's attainable fp32 rate: FLOP/s of one `[n, n] @ [n, n]` matmul, median.

    Args:
      n: the matrices' side.
      rounds: timed matmuls after a warm-up.

    Returns:
      2n³ over the median seconds of one matmul.
    """
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    seconds = spread(interleaved({"matmul": lambda: matmul(a, a)}, rounds)["matmul"])["median"]
    return 2.0 * n**3 / seconds
