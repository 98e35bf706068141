"""The benchmark suite: the correctness gate holds, and the suite runs on a tiny size. Never a time.

torch is in the dev extra (a local CPU wheel), so the gate against PyTorch runs in CI.
"""

import json
import math
import os
import subprocess
import sys

import jax
import pytest
import torch

from helpers import device_env
import metaq_jax as mq
from metaq_jax import cli
from metaq_jax.bench import gate, report, suite
from metaq_jax.errors import InputError

TINY_PLAN = suite.Plan(main_tasks=2, task_counts=(2,), inner_steps=(2,), env_counts=(4,), rounds=1,
                       torch_pairs=1, main_inner_steps=2, memory_inner_steps=2, num_envs=4, rollout_length=5,
                       learners=("pretrain", "rl2 gru"))  # one of each kind: every learner compiles elsewhere
SUMMARY_KEYS = {"speedup_vs_torch", "speedup_vs_torch_loop", "torch", "so_over_fo", "peak_fraction",
                "mem_so_over_fo_k20", "collect_over_bare", "random_walk_over_bare", "compile_s", "workload_compile_s"}


@pytest.fixture(scope="module")
def tiny_result():
    return suite.run_suite(TINY_PLAN)


def test_the_gate_holds_for_every_algorithm_on_the_workload(tiny_result):
    errors = tiny_result["gate_max_rel_error"]
    assert set(errors) == {"maml", "fomaml", "reptile"}
    assert all(e <= gate.RTOL for e in errors.values()), errors
    peers = tiny_result["peer_gate_max_rel_error"]  # maml, the algorithm the peers are timed on
    assert set(peers) == {"torch_batched_bmm", "torch_batched_vmap", "torch_procs"}
    assert all(e <= gate.RTOL for e in peers.values()), peers


def test_the_gate_tells_second_from_first_order():
    config = suite.workload("maml", 1, 2, num_envs=4, rollout_length=5).replace(inner_lr=0.3)
    data = gate.gate_data(config, jax.random.key(0))
    second = gate.jax_direction(config, *data)
    first = gate.torch_direction(config.replace(algo="fomaml"), *data)
    assert gate.relative_error(first, second) > 100 * gate.RTOL


def test_the_suite_runs_on_a_tiny_size(tiny_result):
    assert set(tiny_result["summary"]) == SUMMARY_KEYS
    assert tiny_result["summary"]["collect_over_bare"] is None  # no 1024-env row in the tiny plan
    assert {c["algo"] for c in tiny_result["configs"]} == {"maml", "fomaml", "reptile"}
    assert all(c["flops"] > 0 and c["xla_flops"] > 0 and 0 < c["temp_bytes"] < c["peak_bytes"]
               for c in tiny_result["configs"])
    assert set(tiny_result["envs"]["4"]) == {"metaq_random_walk", "metaq_epsilon_greedy", "gymnax_auto_reset",
                                             "gymnax_bare_step_env", "gymnasium_numpy", "gymnasium_python_loop"}
    peers = tiny_result["torch_peers"]  # T = 2: chunks of 1 and 2 tasks; 2 cores: 2 processes
    assert set(peers["times"]) == {
        f"metaq_jax_{jax.device_count()}_device(s)", "torch_loop_1_thread", f"torch_loop_{torch.get_num_threads()}_threads",
        "torch_batched_bmm_c1", "torch_batched_bmm_c2", "torch_batched_vmap_c1", "torch_batched_vmap_c2", "torch_compile",
        "metaq_jax/collect", "metaq_jax/learn", "torch_batched_bmm_c2/collect", "torch_batched_bmm_c2/learn",
        *([f"torch_procs_{os.cpu_count()}x1_thread"] if 2 % os.cpu_count() == 0 else [])}
    assert set(peers["compile"]) == {"torch_compile", "torch_compile_all"}
    assert "compile_error" not in peers["compile"]["torch_compile"]  # the rollouts' forward compiles
    summary = tiny_result["summary"]
    assert summary["speedup_vs_torch"] == pytest.approx(min(summary["torch"].values()) / min(
        t["median"] for name, t in peers["times"].items() if name.startswith("metaq_jax_")))
    assert summary["speedup_vs_torch"] <= summary["speedup_vs_torch_loop"]  # the loop is one of the peers
    assert summary["compile_s"] > 0 and summary["workload_compile_s"] > 0
    learners = tiny_result["learners"]  # each learner through its MetaLearner alone
    assert {name: row["kind"] for name, row in learners.items()} == {"pretrain": "gradient", "rl2 gru": "memory"}
    assert all(row["env_steps_per_s"] > 0 and row["compile_s"] > 0 for row in learners.values())
    assert all(row["state_bytes"] > row["learner_state_bytes"] >= 0 for row in learners.values())
    json.dumps(tiny_result)  # the JSON `metaq bench --json` prints
    table = report.markdown(tiny_result)
    assert "| summary | value |" in table and "torch_loop_1_thread" in table and "Peak resident memory" in table
    assert "torch_compile_all" in table and "torch_batched_vmap" in table
    assert "| rl2 gru | memory |" in table


SHARDED_CHILD = """
import json
import jax
from metaq_jax.bench import suite
step, compile_s = suite.all_devices_stepper(suite.workload("maml", 2, 2, num_envs=4, rollout_length=5))
metrics = step()
print(json.dumps({"devices": jax.device_count(), "meta_loss": float(metrics.meta_loss), "compile_s": compile_s}))
"""


def test_the_suite_times_the_meta_step_sharded_over_every_device():
    env = device_env(2)
    out = subprocess.run([sys.executable, "-c", SHARDED_CHILD], env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["compile_s"] > 0
    assert math.isfinite(result["meta_loss"])


def test_bench_command_parses_its_flags():
    assert cli.parse(["bench", "--quick", "--json"]).command == cli.Bench(json=True, quick=True)
    with pytest.raises(InputError, match="Unrecognized options: yes"):
        cli.parse(["bench", "--quick", "yes"])


def test_analytic_flops_count_every_inner_step():
    so, fo = (suite.analytic_flops(suite.workload(a, 64, 5)) for a in ("maml", "fomaml"))
    forward = 2 * (4 * 64 + 64 * 64 + 64 * 2)
    assert so == 64 * (7 + 9 * 5) * 1600 * forward
    assert 1.75 < so / fo < 2.5  # the second- over first-order FLOP ratio


def test_scaling_over_simulated_devices_runs_and_agrees():
    from metaq_jax.bench import scaling

    rows = scaling.scaling(num_tasks=2, num_envs=2, length=5, repeats=1, device_counts=(1, 2))
    assert [r["devices"] for r in rows] == [1, 2] and rows[0]["vs_first"] == 1.0
    assert rows[1]["max_abs_param_diff"] < 1e-5
    assert scaling.markdown(rows).count("\n") == 3


def test_every_learner_has_a_workload_of_its_kind():
    assert suite.Plan.full().learners == tuple(suite.LEARNERS)
    kinds = {name: suite.learner_workload(name, 2, 2).kind for name in suite.LEARNERS}
    assert sorted(kinds[name] for name in suite.Plan.quick().learners) == ["gradient", "latent", "memory"]
    assert suite.learner_workload("anil", 2, 2).adapt == "head"
    assert kinds == {"maml": "gradient", "anil": "gradient", "fomaml": "gradient", "reptile": "gradient", "pretrain": "gradient",
                     "rl2 gru": "memory", "rl2 lstm": "memory", "rl2 attention": "memory", "pearl": "latent", "mql": "latent"}


def test_a_population_is_timed_beside_as_many_separate_runs():
    from metaq_jax.bench import population as bench_population

    tiny = dict(family="nav2d", num_tasks=2, num_envs=2, rollout_length=5, hidden_sizes=(8,))
    (row,) = bench_population.population_rows(sizes=(4,), rounds=1, steps=1, workload=tiny)
    assert row["members"] == 4 and row["population_compile_s"] > 0 and row["separate_compile_s"] > 0
    assert row["population_step_s"] > 0 and row["speedup"] == pytest.approx(row["separate_step_s"] / row["population_step_s"])
    assert bench_population.markdown([row]).count("\n") == 2
    assert [len(bench_population.members_of(p)) for p in bench_population.SIZES] == list(bench_population.SIZES)
    gammas = bench_population.members_of(8, ("gamma", (0.5, 0.6, 0.7, 0.8)))  # a memory learner's members
    assert [m["gamma"] for m in gammas] == [0.5, 0.6, 0.7, 0.8] * 2 and [m["seed"] for m in gammas] == [0] * 4 + [1] * 4


def test_meta_steps_of_any_learners_are_timed_apart_from_their_compile():
    tiny = dict(family="bandit", num_tasks=2, num_envs=2, hidden_sizes=(8,))
    result = suite.time_meta_steps({"maml": mq.MetaConfig(**tiny), "rl2": mq.MetaConfig(**tiny, algo="rl2")}, 2)
    assert set(result["learners"]) == {"maml", "rl2"} and result["rounds"] == 2
    assert all(row["compile_s"] > 0 and row["step_s"]["n"] == 2 for row in result["learners"].values())
    assert result["machine"].startswith("Machine: ")
