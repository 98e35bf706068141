"""The benchmark suite: workload W in metaq_jax, beside the PyTorch reference, gated on correctness.

Workload W: T tasks × 32 envs × 50 collection steps on `cartpole`, K inner SGD steps (5 by
default), a 4-64-64-2 MLP, query data collected with the adapted parameters, Adam outer.
"""

import dataclasses
import datetime
import functools
import os
import platform
import resource
import time
from importlib import metadata
from typing import Callable

import jax
import jax.numpy as jnp

from metaq_jax import distributed, training
from metaq_jax.algos import make_meta_learner, make_problem
from metaq_jax.algos.base import task_batch
from metaq_jax.bench import envs, gate
from metaq_jax.bench.measure import compile_timed, interleaved, matmul_rate, spread, xla_stats
from metaq_jax.bench.report import machine_line
from metaq_jax.config import KINDS, MetaConfig
from metaq_jax.types import MetaState, Metrics, Params, Transition, UpdateFn

ALGOS = gate.ALGOS


LEARNERS = {
    "maml": {}, "anil": {"adapt": "head"}, "fomaml": {"algo": "fomaml"}, "reptile": {"algo": "reptile"}, "pretrain": {"algo": "pretrain"},
    "rl2 gru": {"algo": "rl2"}, "rl2 lstm": {"algo": "rl2", "cell": "lstm"},
    "rl2 attention": {"algo": "rl2", "network": "attention"},
    "pearl": {"algo": "pearl", "batch_size": 64, "context_size": 20, "replay_size": 2000, "gradient_steps": 1},
    "mql": {"algo": "mql", "batch_size": 64, "replay_size": 2000, "gradient_steps": 1},
}
"""Every learner the suite compares on the learners' workload: name -> config changes."""
QUICK_LEARNERS = ("maml", "rl2 gru", "pearl")
"""One learner of each kind: the quick preset's learners' table."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run of the suite measures; `quick()` and `full()` are the two presets.

    Attributes:
      main_tasks: T of the headline comparison (torch, so/fo, peak fraction).
      task_counts: T values swept at K = `main_inner_steps`.
      inner_steps: K values swept at T = `main_tasks`.
      env_counts: M values of the environment-throughput table.
      rounds: timed repeats of each JAX configuration (after a warm-up).
      torch_pairs: interleaved JAX / torch pairs.
      torch_tasks: T of the torch comparison, one of `task_counts`; None: `main_tasks`.
      main_inner_steps: K of the headline comparison.
      memory_inner_steps: K of the remat memory comparison.
      num_envs: M of every meta-step.
      rollout_length: L of every meta-step.
      learners: the rows of the learners' table, keys of `LEARNERS` (full: all; quick: one per kind).
    """

    main_tasks: int  # T of the headline comparison (torch, so/fo, peak fraction)
    task_counts: tuple[int, ...]  # T values swept at K = 5
    inner_steps: tuple[int, ...]  # K values swept at T = main_tasks
    env_counts: tuple[int, ...]  # M values of the environment-throughput table
    rounds: int  # timed repeats of each JAX configuration (after a warm-up)
    torch_pairs: int  # interleaved JAX / torch pairs
    torch_tasks: int | None = None  # T of the torch comparison, one of task_counts; None: main_tasks
    main_inner_steps: int = 5  # K of the headline comparison
    memory_inner_steps: int = 20  # K of the remat memory comparison
    num_envs: int = 32
    rollout_length: int = 50
    learners: tuple[str, ...] = tuple(LEARNERS)

    @classmethod
    def quick(cls) -> "Plan":
        """The quick preset: T = 8, K = 5, M ∈ {64, 1024} envs in the throughput table, 3 rounds of each,
        one learner of each kind (each learner's compile takes ~8 s here).

        Returns:
          The quick `Plan`.
        """
        return cls(main_tasks=8, task_counts=(8,), inner_steps=(5,), env_counts=(64, 1024), rounds=3,
                   torch_pairs=3, learners=QUICK_LEARNERS)

    @classmethod
    def full(cls) -> "Plan":
        """The full preset: T ∈ {1, 8, 64, 256}, K ∈ {1, 5, 20}, M up to 8192, 5 rounds.

        Returns:
          The full `Plan`.
        """
        return cls(main_tasks=64, task_counts=(1, 8, 64, 256), inner_steps=(1, 5, 20),
                   env_counts=(1, 64, 1024, 8192), rounds=5, torch_pairs=5)


def workload(algo: str, num_tasks: int, inner_steps: int = 5, *, remat: bool = False, num_envs: int = 32,
             rollout_length: int = 50) -> MetaConfig:
    """Workload W's config for one algorithm and size.

    Args:
      algo: `maml`, `fomaml` or `reptile`.
      num_tasks: T.
      inner_steps: K.
      remat: recompute the inner steps in the backward pass.
      num_envs: M.
      rollout_length: L.

    Returns:
      The `cartpole` config: a 64-64 MLP, α = 0.01, γ = 0.99, support ε = 1, query ε = 0.1.
    """
    return MetaConfig(family="cartpole", algo=algo, num_tasks=num_tasks, num_envs=num_envs,
                      rollout_length=rollout_length, inner_steps=inner_steps, inner_lr=0.01, gamma=0.99,
                      epsilon=0.1, support_epsilon=1.0, hidden_sizes=(64, 64), remat=remat)


def learner_workload(name: str, num_tasks: int, num_envs: int) -> MetaConfig:
    """The learners' workload for one learner: the same tasks and data per meta-step for every kind.

    `tabular-mdp` (10 states, 5 actions, 10-step episodes), T tasks × M envs, a 64-64 torso:
    gradient learners collect 20-step support and query rollouts and take K = 1 inner step;
    memory learners one 2-episode (20-step) trial per task, with a 64-wide cell; pearl and mql
    collect one episode per task and take one TD step on 64 replayed transitions of each (a pool
    of 64 training tasks, or T if more; pearl's context of 20 transitions, mql's history of 10 steps).

    Args:
      name: a key of `LEARNERS`.
      num_tasks: T.
      num_envs: M.

    Returns:
      The config.
    """
    changes = LEARNERS[name]
    base = dict(family="tabular-mdp", num_tasks=num_tasks, num_envs=num_envs, trial_episodes=2, gamma=0.9,
                hidden_sizes=(64, 64))
    kind = KINDS[changes.get("algo", MetaConfig.algo)]
    if kind == "gradient":
        base.update(rollout_length=20, inner_steps=1, inner_lr=0.1)
    if kind == "latent":
        base.update(task_pool=max(64, num_tasks))
    return MetaConfig(**base, **changes)


def learners_table(names: tuple[str, ...], num_tasks: int, num_envs: int, rounds: int,
                   workload: Callable[[str, int, int], MetaConfig] = learner_workload) -> dict[str, dict]:
    """Learners' meta-steps on a workload: compile time, interleaved medians.

    Each is measured through its `MetaLearner` alone (`init`, `update`, `env_steps_per_update`).

    Args:
      names: the learners, keys of `LEARNERS`.
      num_tasks: T.
      num_envs: M.
      rounds: timed rounds, interleaved over the learners.
      workload: `(name, T, M) -> config`; default the learners' workload (`learner_workload`).

    Returns:
      `name -> {"kind", "compile_s", "step_s", "env_steps_per_s", "state_bytes", "learner_state_bytes"}`:
      the bytes of the whole `MetaState` and of the learner's own part of it (pearl's replay).
    """
    fns, out = {}, {}
    for name in names:
        config = workload(name, num_tasks, num_envs)
        learner = make_meta_learner(config)
        state = learner.init(jax.random.key(config.seed))
        compiled, compile_s = compile_timed(learner.update, state, jax.random.key(1))
        fns[name] = stepper(compiled, state)
        out[name] = {"kind": learner.kind, "compile_s": compile_s, "env_steps": learner.env_steps_per_update,
                     "state_bytes": tree_bytes(state), "learner_state_bytes": tree_bytes(state.learner_state)}
    times = interleaved(fns, rounds)
    for name, row in out.items():
        step = spread(times[name])
        row.update(step_s=step, env_steps_per_s=row.pop("env_steps") / step["median"])
    return out


def tree_bytes(tree) -> int:
    """The bytes the arrays of `tree` hold.

    Args:
      tree (Any): a pytree of arrays (typed PRNG keys allowed).

    Returns:
      The sum of the leaves' sizes in bytes.
    """
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)
               if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))


def compiled_meta_step(config: MetaConfig) -> tuple[jax.stages.Compiled, MetaState, float]:
    """`(compiled update, its initial state, compile seconds)` of one meta-step.

    Args:
      config: the workload.

    Returns:
      `(compiled update(state, key), the state from config.seed, seconds compiling took)`.
    """
    learner = make_meta_learner(config)
    state = learner.init(jax.random.key(config.seed))
    compiled, seconds = compile_timed(learner.update, state, jax.random.key(1))
    return compiled, state, seconds


def time_meta_steps(configs: dict[str, MetaConfig], rounds: int) -> dict:
    """One meta-step of each config (one training seed, from `config.seed`), interleaved; compile apart.

    Args:
      configs: `name -> config`, any learner.
      rounds: timed meta-steps of each (after a warm-up), each blocked on.

    Returns:
      `{"machine": machine_line, "rounds", "learners": {name: {"compile_s", "step_s": spread}}}`.
    """
    steps, compile_s = {}, {}
    for name, config in configs.items():
        learner = make_meta_learner(config)
        state, key = training.initial_state(learner, config.seed)
        compiled, compile_s[name] = compile_timed(learner.update, state, key)
        steps[name] = functools.partial(compiled, state, key)
    times = interleaved(steps, rounds)
    return {"machine": machine_line(machine()), "rounds": rounds,
            "learners": {name: {"compile_s": compile_s[name], "step_s": spread(t)} for name, t in times.items()}}


def stepper(compiled: UpdateFn, state: MetaState) -> Callable[[], Metrics]:
    """A `() -> metrics` closure advancing its own meta-state with `compiled(state, key)`.

    Args:
      compiled: a non-donating update (compiled, or jitted over a mesh).
      state: the meta-state to start from.

    Returns:
      `step() -> Metrics`, one meta-step per call, each with a key folded from the state's step.
    """
    box = [state]

    def step():
        box[0], metrics = compiled(box[0], jax.random.fold_in(jax.random.key(2), box[0].step))
        return metrics

    return step


def all_devices_stepper(config: MetaConfig) -> tuple[Callable[[], Metrics], float]:
    """`(() -> metrics, compile s)`: the meta-step sharded over every local device along `task`.

    On a CPU split into one JAX device per core (`metaq bench` does this), the only way a
    meta-step uses every core: XLA runs one device's work on one core at a time.

    Args:
      config: the workload; `config.num_tasks` must divide by the device count.

    Returns:
      `(step, seconds of the first step)`: the first call compiles (and runs once).

    Raises:
      ValueError: `config.num_tasks` does not divide by the device count.
    """
    learner = make_meta_learner(config)
    mesh = distributed.make_mesh(0)
    state = learner.init(jax.random.key(config.seed))
    sharding = distributed.state_sharding(state, mesh, learner.pooled)
    update = distributed.shard_update(learner.update, mesh, config.num_tasks, sharding)
    step = stepper(update, distributed.place(state, sharding))
    start = time.perf_counter()
    jax.block_until_ready(step())
    return step, time.perf_counter() - start


def collection_part(config: MetaConfig, state: MetaState
                    ) -> tuple[Callable[[], tuple[Transition, Transition]], tuple[Transition, Transition]]:
    """Collection alone of one meta-step: `(() -> (support, query) [T, L, M], the data)`.

    The support and the query rollouts of T tasks, both with θ: the query policy's
    parameters do not change the cost. The same for every algorithm.

    Args:
      config: the workload.
      state: gives θ.

    Returns:
      `(collect, (support, query))`: the compiled collection as a closure, and one result of it.
    """
    problem = make_problem(config)
    tasks = problem.family.train_tasks(jax.random.key(3), config.num_tasks)
    keys = jax.random.split(jax.random.key(4), config.num_tasks)

    def collect(params, tasks, keys):
        def one(task, key):
            k_s, k_q = jax.random.split(key)
            return (problem.collect(params, task, k_s, config.support_epsilon),
                    problem.collect(params, task, k_q, config.epsilon))
        return jax.lax.map(lambda tk: one(*tk), (tasks, keys), batch_size=task_batch(config, config.num_tasks))

    compiled, _ = compile_timed(collect, state.params, tasks, keys)
    return (lambda: compiled(state.params, tasks, keys)), compiled(state.params, tasks, keys)


def learning_part(config: MetaConfig, state: MetaState, support: Transition,
                  query: Transition) -> Callable[[], Params]:
    """Learning alone: `() -> direction`, every task's direction on fixed data, averaged over tasks.

    The meta-step without its environments.

    Args:
      config: the workload; `config.algo` picks the direction.
      state: gives θ and the target network.
      support: `[T, L, M]` support transitions, from `collection_part`.
      query: `[T, L, M]` query transitions, from `collection_part`.

    Returns:
      The compiled learning as a closure: `() -> mean direction`, structured like θ.
    """
    direction = functools.partial(gate.jax_direction, config)

    def learn(params, target, support, query):  # tasks batched as the meta-step batches them
        directions = jax.lax.map(lambda data: direction(params, target, *data), (support, query),
                                 batch_size=task_batch(config, config.num_tasks))
        return jax.tree.map(lambda d: jnp.mean(d, axis=0), directions)

    compiled, _ = compile_timed(learn, state.params, state.target_params, support, query)
    return lambda: compiled(state.params, state.target_params, support, query)


def analytic_flops(config: MetaConfig, obs_dim: int = 4, num_actions: int = 2) -> float:
    """Matmul FLOPs of one meta-step of `config`'s MLP, counted by hand (elementwise work left out).

    A floor, not what XLA happens to run: with F = 2 Σ fan_in·fan_out, the FLOPs of one
    sample's forward pass, N = M·L samples per rollout, and a backward pass costing 2F, per task:
    two rollouts 2NF; the target network on the support data once, NF (it is loop-invariant);
    each inner step 3NF (online forward and backward); the query loss 2NF (online and target
    forwards) plus 2NF for its gradient (not Reptile's). Second order adds, per inner step, the
    backward through that step's gradient, about twice its 3NF: 6NF.

    Args:
      config: the workload: `algo`, T, K, M, L and the hidden sizes.
      obs_dim: the observation's size (4 for CartPole).
      num_actions: A (2 for CartPole).

    Returns:
      The meta-step's FLOPs over all T tasks.
    """
    sizes = (obs_dim, *config.hidden_sizes, num_actions)
    forward = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n, k = config.num_envs * config.rollout_length, config.inner_steps
    per_task = {"maml": 7 + 9 * k, "fomaml": 7 + 3 * k, "reptile": 5 + 3 * k}[config.algo]
    return float(config.num_tasks * per_task * n * forward)


def rates(config: MetaConfig, seconds: float) -> dict[str, float]:
    """Meta-steps/s, tasks/s and env steps/s (support + query) of a meta-step taking `seconds`.

    Args:
      config: the workload: T, M and L.
      seconds: one meta-step's time.

    Returns:
      `{"meta_steps_per_s", "tasks_per_s", "env_steps_per_s"}`.
    """
    env_steps = 2 * config.num_tasks * config.num_envs * config.rollout_length
    return {"meta_steps_per_s": 1 / seconds, "tasks_per_s": config.num_tasks / seconds,
            "env_steps_per_s": env_steps / seconds}


def measure_size(plan: Plan, num_tasks: int, inner_steps: int, *, all_devices: bool = False
                 ) -> tuple[dict[str, dict], dict, tuple]:
    """Every algorithm at one (T, K): compile, XLA stats, interleaved step / collect / learn times.

    On one device; with `all_devices` (and more than one device) also sharded over all of them.

    Args:
      plan: gives the rounds, M and L.
      num_tasks: T.
      inner_steps: K.
      all_devices: also time the meta-step sharded over every device, where T divides by
        their number.

    Returns:
      `(results, closures, data)`: per algorithm, its measurements (`step_s`, rates, `collect_s`,
      `learn_s`, compile time, FLOPs, XLA stats, and `best_step_s` of its fastest setting); the
      closures for reuse: `{algo}` the fastest setting's meta-step, `collect` and `{algo}/learn`;
      and the `(support, query)` `[T, L, M]` data the learning closures learn on.
    """
    configs = {a: workload(a, num_tasks, inner_steps, num_envs=plan.num_envs,
                           rollout_length=plan.rollout_length) for a in ALGOS}
    sharded = all_devices and jax.device_count() > 1 and num_tasks % jax.device_count() == 0
    fns, out, data = {}, {}, None
    for algo, config in configs.items():
        compiled, state, compile_s = compiled_meta_step(config)
        if data is None:
            fns["collect"], data = collection_part(config, state)
        fns.update({f"{algo}/step": stepper(compiled, state),
                    f"{algo}/learn": learning_part(config, state, *data)})
        out[algo] = {"num_tasks": num_tasks, "inner_steps": inner_steps, "compile_s": compile_s,
                     "flops": analytic_flops(config), **xla_stats(compiled), "devices": 1}
        if sharded:
            fns[f"{algo}/all_devices"], _ = all_devices_stepper(config)
    times = interleaved(fns, plan.rounds)
    for algo, config in configs.items():
        step = spread(times[f"{algo}/step"])
        out[algo].update(step_s=step, **rates(config, step["median"]),
                         collect_s=spread(times["collect"]), learn_s=spread(times[f"{algo}/learn"]))
        if sharded and spread(times[f"{algo}/all_devices"])["median"] < step["median"]:
            step = spread(times[f"{algo}/all_devices"])
            out[algo].update(devices=jax.device_count(), best_step_s=step,
                             best_env_steps_per_s=rates(config, step["median"])["env_steps_per_s"])
        else:
            out[algo]["best_step_s"] = step
    best = {algo: fns[f"{algo}/all_devices" if out[algo]["devices"] > 1 else f"{algo}/step"] for algo in ALGOS}
    return out, {**best, "collect": fns["collect"], **{f"{a}/learn": fns[f"{a}/learn"] for a in ALGOS}}, data


def remat_memory(plan: Plan, measured: list[dict]) -> dict[str, int | None]:
    """XLA temp bytes of a meta-step at T = main, K = `plan.memory_inner_steps`.

    Second order with and without remat, and first order; taken from `measured` configs where
    there, else compiled.

    Args:
      plan: gives T = `main_tasks`, K, M and L.
      measured: the configs measured so far (`algo`, `num_tasks`, `inner_steps`, `temp_bytes`).

    Returns:
      `{"maml", "maml_remat", "fomaml"}` temp bytes, None where XLA does not report them.
    """
    inner_steps, sizes = plan.memory_inner_steps, dict(num_envs=plan.num_envs, rollout_length=plan.rollout_length)
    known = {c["algo"]: c["temp_bytes"] for c in measured
             if (c["num_tasks"], c["inner_steps"]) == (plan.main_tasks, inner_steps)}
    cases = {"maml": workload("maml", plan.main_tasks, inner_steps, **sizes),
             "maml_remat": workload("maml", plan.main_tasks, inner_steps, remat=True, **sizes),
             "fomaml": workload("fomaml", plan.main_tasks, inner_steps, **sizes)}
    return {name: known[name] if name in known else xla_stats(compiled_meta_step(config)[0])["temp_bytes"]
            for name, config in cases.items()}


PEER_CHUNK = 8
"""Tasks per stacked computation of `torch_procs`, `torch_compile` and the split (the fastest
chunk on this CPU when the peers were written; the suite times 1, 8 and T for both modes)."""


def torch_peers(plan: Plan, num_tasks: int, jax_steps: dict[str, Callable[[], object]], data: tuple,
                algo: str = "maml") -> dict:
    """Interleaved meta-steps of metaq_jax and every PyTorch peer, each on the whole machine.

    Contenders: metaq_jax's fastest setting; `torch_loop` (the reference) with 1 thread and with
    torch's default; `torch_batched` in both modes with chunks of 1, 8 and T tasks; `torch_procs`
    (one process per core); `torch_compile` (the rollouts' forward compiled, learning eager) and
    `torch_compile_all` (the learning's forward compiled too), each timed where its first step
    compiled; where torch failed (second order: no double backward in torch 2.13) the error is
    the result.
    Beside them, the collection / learning split: metaq_jax's parts and `torch_batched`'s, the
    learning on the same fixed arrays. All start from the same flax initialisation. Needs torch.

    Args:
      plan: gives the pairs, K, M and L.
      num_tasks: T.
      jax_steps: `() -> ...` closures: `step` (the fastest meta-step), `collect` and `learn`
        (`collection_part`, `learning_part`), from `measure_size`.
      data: `(support, query)` `[T, L, M]`, the data `jax_steps["learn"]` learns on.
      algo: the algorithm of all.

    Returns:
      `{"times": {contender: spread of seconds}, "compile": {peer: {"first_step_s"} and, where
      torch failed, "compile_error"}}`; `times` also holds `.../collect` and `.../learn` rows.
    """
    import torch

    from metaq_jax.bench import torch_batched as tb
    from metaq_jax.bench.torch_reference import TorchMetaLearner, sample_tasks

    config = workload(algo, num_tasks, plan.main_inner_steps, num_envs=plan.num_envs, rollout_length=plan.rollout_length)
    variables = make_problem(config).init_params(jax.random.key(config.seed))
    run = dict(num_envs=config.num_envs, rollout_length=config.rollout_length, outer_lr=config.outer_lr,
               epsilon=config.epsilon, support_epsilon=config.support_epsilon,
               target_update_period=config.target_update_period)
    threads = torch.get_num_threads()
    loop = TorchMetaLearner(variables, algo=algo, num_tasks=num_tasks, inner_steps=config.inner_steps,
                            inner_lr=config.inner_lr, gamma=config.gamma, **run)
    chunk = min(PEER_CHUNK, num_tasks)
    learning = gate.peer_learning(config, chunk)
    batched = {f"torch_batched_{mode}_c{c}": tb.BatchedMetaLearner(variables, gate.peer_learning(config, c, mode),
                                                                    num_tasks=num_tasks, **run)
               for mode in tb.MODES for c in sorted({1, chunk, num_tasks})}
    compiled_forward = torch.compile(tb.forward)
    compiled = {"torch_compile": tb.BatchedMetaLearner(variables, learning, num_tasks=num_tasks, **run,
                                                       policy_net=compiled_forward),
                "torch_compile_all": tb.BatchedMetaLearner(variables, dataclasses.replace(learning, net=compiled_forward),
                                                           num_tasks=num_tasks, **run, policy_net=compiled_forward)}
    compile_s = {}
    for name, learner in compiled.items():
        start = time.perf_counter()
        try:  # without donated buffers, torch reaches its own double-backward limit, not a buffer check
            with torch._functorch.config.patch(donated_buffer=False):
                learner.step()
            compile_s[name] = {"first_step_s": time.perf_counter() - start}
        except Exception as error:  # torch's own failure to compile is a result, reported as a row
            compile_s[name] = {"first_step_s": time.perf_counter() - start,
                               "compile_error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    compiled = {name: learner for name, learner in compiled.items() if "compile_error" not in compile_s[name]}
    processes = os.cpu_count() or 1
    procs = (tb.ProcsMetaLearner(processes, variables=variables, learning=learning, num_tasks=num_tasks, **run)
             if num_tasks % processes == 0 else None)
    peer = batched[f"torch_batched_bmm_c{chunk}"]
    support, query = (tb.batch_from_transitions(x) for x in data)

    def torch_collect():
        peer.env.set_tasks(sample_tasks(peer.rng, num_tasks))
        peer.collect_support()
        theta = tb.stack([p.detach() for p in peer.theta], num_tasks)
        peer.env.rollout(peer.rng, peer.length, tb.epsilon_greedy(tb.forward, theta, peer.rng, peer.epsilon))

    def torch_learn():
        tb.meta_direction(learning, peer.theta, peer.target, support, lambda adapted: query)

    def with_threads(n, fn):
        def timed():
            torch.set_num_threads(n)
            fn()
            torch.set_num_threads(threads)
        return timed

    contenders = {f"metaq_jax_{jax.device_count()}_device(s)": jax_steps["step"],
                  "torch_loop_1_thread": with_threads(1, loop.step), f"torch_loop_{threads}_threads": loop.step,
                  **{name: learner.step for name, learner in {**batched, **compiled}.items()},
                  "metaq_jax/collect": jax_steps["collect"], "metaq_jax/learn": jax_steps["learn"],
                  f"torch_batched_bmm_c{chunk}/collect": torch_collect, f"torch_batched_bmm_c{chunk}/learn": torch_learn}
    if procs is not None:
        contenders[f"torch_procs_{processes}x1_thread"] = procs.step
    try:
        times = interleaved(contenders, plan.torch_pairs)
    finally:
        if procs is not None:
            procs.close()
    return {"times": {name: spread(t) for name, t in times.items()}, "compile": compile_s}


def machine() -> dict[str, object]:
    """The machine and library versions the numbers belong to.

    Returns:
      Processor, CPU count, JAX's device kind, load average, UTC date, and the versions of
      python, jax, flax, gymnax, gymnasium and torch (None where not installed).
    """
    versions = {"python": platform.python_version()}
    for package in ("jax", "flax", "gymnax", "gymnasium", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "device": jax.devices()[0].device_kind, "load_average": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **versions}


def torch_summary(peers: dict) -> dict:
    """The torch comparison's ratios: to the fastest gated peer, to the loop reference, every peer's median.

    Args:
      peers: `torch_peers`'s result.

    Returns:
      `{"speedup_vs_torch", "speedup_vs_torch_loop", "torch"}`; `torch` maps each peer's meta-step
      to its median seconds (the split's rows and the compile attempt left out).
    """
    steps = {name: t["median"] for name, t in peers["times"].items() if "/" not in name}
    jax_s = min(v for k, v in steps.items() if k.startswith("metaq_jax"))
    torch_s = {k: v for k, v in steps.items() if k.startswith("torch")}
    loop_s = min(v for k, v in torch_s.items() if k.startswith("torch_loop"))
    return {"speedup_vs_torch": min(torch_s.values()) / jax_s, "speedup_vs_torch_loop": loop_s / jax_s,
            "torch": torch_s}


def summarise(result: dict, main: dict[str, dict], memory: dict) -> dict:
    """The issue's headline ratios from the measured parts; None where not measured.

    Args:
      result: the suite's result so far: `envs`, `matmul_flops_per_s`, `default_compile_s` and
        `torch_peers` (None without torch).
      main: the headline size's results per algorithm, from `measure_size`.
      memory: `remat_memory`'s temp bytes.

    Returns:
      `speedup_vs_torch` (to the fastest gated peer), `speedup_vs_torch_loop`, `torch` (every
      peer's median seconds), `so_over_fo`, `peak_fraction`, `mem_so_over_fo_k20`,
      `collect_over_bare` (ε-greedy collection over gymnax's bare step), `random_walk_over_bare`,
      `compile_s` (`MetaConfig()`'s default job) and `workload_compile_s` (W's at the headline size).
    """
    so, fo = main["maml"], main["fomaml"]
    envs_1k = result["envs"].get("1024")  # the reference size
    torch = (torch_summary(result["torch_peers"]) if result["torch_peers"] else
             {"speedup_vs_torch": None, "speedup_vs_torch_loop": None, "torch": None})
    return {
        **torch,
        "so_over_fo": so["best_step_s"]["median"] / fo["best_step_s"]["median"],
        "peak_fraction": so["flops"] / so["best_step_s"]["median"] / result["matmul_flops_per_s"],
        "mem_so_over_fo_k20": memory["maml_remat"] / memory["fomaml"] if memory.get("fomaml") else None,
        "collect_over_bare": None if envs_1k is None else
        envs_1k["metaq_epsilon_greedy"] / envs_1k["gymnax_bare_step_env"],
        "random_walk_over_bare": None if envs_1k is None else
        envs_1k["metaq_random_walk"] / envs_1k["gymnax_bare_step_env"],
        "compile_s": result["default_compile_s"],
        "workload_compile_s": so["compile_s"],
    }


def run_suite(plan: Plan, *, with_torch: bool = True,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Gate, then measure everything `plan` asks for.

    Args:
      plan: what to measure.
      with_torch: run the correctness gates and the torch timings; `False` (torch not
        installed) skips them, and they are then None.
      log: called with a line before each part.

    Returns:
      One JSON-ready dict: `machine`, `plan`, `gate_max_rel_error` and `peer_gate_max_rel_error`
      (with torch), `matmul_flops_per_s`, `default_compile_s`, `configs`, `temp_bytes_k20`, `learners`,
      `envs`, `torch_peers`, `max_rss_mib` and `summary`.

    Raises:
      GateError: before any timing, if the frameworks disagree.
    """
    result = {"machine": machine(), "plan": dataclasses.asdict(plan)}
    if with_torch:
        log("correctness gates (metaq_jax vs the PyTorch reference and peers: meta-gradients)")
        gate_config = workload("maml", 1, plan.main_inner_steps, num_envs=plan.num_envs, rollout_length=plan.rollout_length)
        result["gate_max_rel_error"] = gate.check_gate(gate_config)
        result["peer_gate_max_rel_error"] = gate.check_peers(gate_config)
    log("attainable fp32 rate: 2048³ matmul")
    result["matmul_flops_per_s"] = matmul_rate()
    log("compile time of MetaConfig()'s default job")
    result["default_compile_s"] = compiled_meta_step(MetaConfig())[2]
    sizes = sorted({(t, plan.main_inner_steps) for t in plan.task_counts} |
                   {(plan.main_tasks, k) for k in plan.inner_steps})
    torch_tasks = plan.main_tasks if plan.torch_tasks is None else plan.torch_tasks
    result["configs"], torch_parts = [], None
    for num_tasks, inner_steps in sizes:
        log(f"meta-step T={num_tasks} K={inner_steps}: so, fo, reptile")
        headline = (num_tasks, inner_steps) in {(plan.main_tasks, plan.main_inner_steps),
                                                 (torch_tasks, plan.main_inner_steps)}
        out, closures, data = measure_size(plan, num_tasks, inner_steps, all_devices=headline)
        result["configs"] += [{"algo": a, **v} for a, v in out.items()]
        if (num_tasks, inner_steps) == (plan.main_tasks, plan.main_inner_steps):
            main = out
        if (num_tasks, inner_steps) == (torch_tasks, plan.main_inner_steps):
            torch_parts = ({"step": closures["maml"], "collect": closures["collect"], "learn": closures["maml/learn"]},
                           data)
    log(f"XLA temp bytes at K={plan.memory_inner_steps} with and without remat")
    result["temp_bytes_k20"] = remat_memory(plan, result["configs"])
    log(f"every learner on the learners' workload (tabular-mdp, T={plan.main_tasks})")
    result["learners"] = learners_table(plan.learners, plan.main_tasks, plan.num_envs, plan.rounds)
    result["envs"] = {}
    for num_envs in plan.env_counts:
        log(f"environment throughput at {num_envs} envs")
        result["envs"][str(num_envs)] = envs.env_throughput(num_envs, 100, plan.rounds)
    result["torch_peers"] = None
    if with_torch:
        log(f"metaq_jax vs every PyTorch peer, {plan.torch_pairs} interleaved rounds")
        result["torch_peers"] = torch_peers(plan, torch_tasks, *torch_parts)
    result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    result["summary"] = summarise(result, main, result["temp_bytes_k20"])
    return result
