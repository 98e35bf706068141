"""Populations: P meta-learners — seeds × hyperparameters — trained as one compiled program.

A member differs from the others by its seed and by hyperparameters that change no array shape
(`HYPERPARAMS`). Those are leaves of a pytree the update reads at run time, so one `jit` of the
population's update, `vmap`ped over the named axis `member` (or `member_batch` members at a
time), trains every member; member i computes what `metaq train` computes alone with its
settings (to float32 rounding).
"""

import copy
import itertools
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from metaq_jax import distributed
from metaq_jax.algos import make_meta_learner
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.evaluate import (LEARNED, PROTOCOLS, RANDOM_INIT_SEED, count_tasks, fitted_test, memory_budget,
                                per_task_seed, programs)
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.training import initial_state, step_key
from metaq_jax.types import MetaState, Metrics

HYPERPARAMS = {"inner_lr": jnp.float32, "outer_lr": jnp.float32, "gamma": jnp.float32, "epsilon": jnp.float32,
               "support_epsilon": jnp.float32, "meta_sgd_lr": jnp.float32, "target_update_period": jnp.int32,
               "td_lambda": jnp.float32, "kl_weight": jnp.float32, "adapt_lr": jnp.float32, "beta_clip": jnp.float32,
               "max_grad_norm": jnp.float32}
"""The fields a population may vary between members, and the dtype of their leaves."""

Member = dict[str, Any]
"""One member's settings: `{"seed": int, field: value, ...}` for fields of `HYPERPARAMS`."""


class Population(NamedTuple):
    """The state of P members, every leaf with a leading `[P]` axis."""

    states: MetaState  # each member's learner state
    hyperparams: dict[str, chex.Array]  # {field: [P]}: the values the members differ by
    run_keys: chex.PRNGKey  # [P]: each member's run key; meta-step s uses fold_in(run_key, s)


class PopulationLearner(NamedTuple):
    """A population as pure functions: `init() -> Population`, `update(population) -> (population, Metrics[P])`."""

    members: tuple[Member, ...]
    init: Callable[[], Population]
    update: Callable[[Population], tuple[Population, Metrics]]
    env_steps_per_update: int  # of each member
    num_tasks: int  # T, each member's tasks per meta-step
    pooled: bool = False  # each member's learner state is a pool of training tasks (`MetaLearner.pooled`)


def grid_members(seeds: Sequence[int], grid: Mapping[str, Sequence[float]]) -> list[Member]:
    """Every seed with every combination of the grid's values, seeds varying slowest.

    Args:
      seeds: the training seeds.
      grid: `{field: values}`, fields of `HYPERPARAMS`.

    Returns:
      `len(seeds) × Π len(values)` members, `{"seed": s, field: value, ...}`.
    """
    names = list(grid)
    return [{"seed": seed, **dict(zip(names, values))}
            for seed in seeds for values in itertools.product(*(grid[n] for n in names))]


def member_config(config: MetaConfig, member: Member) -> MetaConfig:
    """The config of `metaq train` for one member alone: `config` with the member's seed and values.

    Args:
      config: the population's shared settings.
      member: `{"seed": s, field: value, ...}`.

    Returns:
      The validated config.

    Raises:
      InputError: a field is not in `HYPERPARAMS` (it changes shapes or is not a hyperparameter), or a
        value is one the field's own validation refuses.
    """
    for name in member:
        if name != "seed" and name not in HYPERPARAMS:
            raise InputError(f"sweep field {name!r}: only fields that change no array shape may vary "
                             f"between members: {', '.join(HYPERPARAMS)}")
    return config.replace(**member)


def runtime_config(config: MetaConfig, hyperparams: Mapping[str, chex.Array]) -> MetaConfig:
    """`config` reading `hyperparams`' (traced) values in place of its own; not validated again.

    Every member's values were validated as Python numbers by `member_config`; a learner built
    from the result reads them wherever it reads the config, as arrays of the running program.

    Args:
      config: the shared settings.
      hyperparams: `{field: scalar array}` for fields of `HYPERPARAMS`.

    Returns:
      A copy of `config` holding the arrays.
    """
    runtime = copy.copy(config)
    for name, value in hyperparams.items():
        object.__setattr__(runtime, name, value)  # a frozen dataclass: its checks refuse arrays
    return runtime


def member_batch(config: MetaConfig, num_members: int) -> int:
    """How many of a population's `num_members` members are vmapped at once (`config.member_batch`).

    Automatic (0): all of them. On a CPU, one at a time (1) is faster when a member's meta-step is
    large, as a memory learner's on 100-step trials is, and slower when it is small
    (benchmarks/RESULTS.md: 0.73× the time for 3 RL² seeds, 1.4–2.3× for small MAML steps).

    Args:
      config: its `member_batch` is used.
      num_members: P.

    Returns:
      From 1 to `num_members`.
    """
    return min(config.member_batch, num_members) if config.member_batch else num_members


def each_member(fn: Callable, num_members: int, batch: int, **vmap_options: Any) -> Callable:
    """`fn` mapped over the leading member axis of its arguments and results.

    One member: `fn` on that member alone, so a population of one computes bit for bit what its
    run alone computes (a vmapped program rounds differently, and over a long run the difference
    grows). P > 1 members: `jax.vmap(fn, **vmap_options)` when `batch` ≥ P or the members are
    split across the mesh's `member` axis; otherwise `lax.map`, `batch` members vmapped at a time,
    the rest in sequence.

    Args:
      fn: a function of per-member arguments.
      num_members: P, the length of the arguments' leading axis.
      batch: members vmapped at once (`member_batch`), the rest in sequence.
      **vmap_options: for `jax.vmap` (`axis_name`, `spmd_axis_name`).

    Returns:
      The mapped function: arguments and results with a leading `[P]` axis.
    """
    if num_members == 1:
        return lambda *args: jax.tree.map(lambda x: x[None], fn(*jax.tree.map(lambda x: x[0], args)))
    if batch >= num_members or vmap_options.get("spmd_axis_name"):
        return jax.vmap(fn, **vmap_options)
    return lambda *args: jax.lax.map(lambda xs: fn(*xs), args, batch_size=None if batch == 1 else batch)


def make_population(config: MetaConfig, family: TaskFamily, members: Sequence[Member]) -> PopulationLearner:
    """A population of `members` of `config`'s learner, trained by one compiled update.

    Every member must give the same fields (besides its seed); those fields become `[P]` leaves
    of `Population.hyperparams`, the rest of `config` is shared and compiled in.

    Args:
      config: the shared settings (algo, network, sizes, budget, ...).
      family: the tasks, named `config.family`.
      members: P members, as `grid_members` gives them.

    Returns:
      The `PopulationLearner`; `update` is jit-able and vmaps a learner's update over the axis
      `member`.

    Raises:
      InputError: no member, members giving different fields, or a member `member_config` refuses.
    """
    if not members:
        raise InputError("a population needs at least one member")
    names = sorted(set(members[0]) - {"seed"})
    for member in members:
        if sorted(set(member) - {"seed"}) != names:
            raise InputError(f"population member {member}: every member must give the fields {names}")
        member_config(config, member)
    hyperparams = {n: jnp.asarray([m[n] for m in members], HYPERPARAMS[n]) for n in names}
    seeds = [member.get("seed", config.seed) for member in members]

    def learner(values):
        return make_meta_learner(runtime_config(config, values), family)

    batch = member_batch(config, len(members))

    def init() -> Population:  # each member's state and run key as its run alone makes them
        states, run_keys = each_member(lambda h, s: initial_state(learner(h), s), len(members), batch)(
            hyperparams, jnp.asarray(seeds, jnp.uint32))
        return Population(states=states, hyperparams=hyperparams, run_keys=run_keys)

    def member_update(state, values, run_key):
        return learner(values).update(state, step_key(run_key, state.step))

    def update(population: Population) -> tuple[Population, Metrics]:
        states, metrics = each_member(member_update, len(members), batch, axis_name=distributed.MEMBER_AXIS,
                                      spmd_axis_name=distributed.member_axis())(
            population.states, population.hyperparams, population.run_keys)
        return population._replace(states=states), metrics

    one = make_meta_learner(config, family)
    return PopulationLearner(members=tuple(members), init=init, update=update,
                             env_steps_per_update=one.env_steps_per_update, num_tasks=config.num_tasks,
                             pooled=one.pooled)


def population_steps(learner: PopulationLearner, value: Population, start: int, num_steps: int,
                     mesh: Mesh | None = None) -> Iterator[tuple[int, Population, Metrics]]:
    """Meta-steps `start .. num_steps - 1` of every member from `value`, in one compiled update.

    Args:
      learner: from `make_population`.
      value: the population at meta-step `start`; without a mesh, donated to the first update.
      start: the meta-step `value` is at.
      num_steps: the meta-steps of each member.
      mesh: devices to run on (`distributed.make_mesh`): each member's tasks split along `task`
        (members along `member`, where the mesh has that axis); None: one device.

    Yields:
      `(step, population, metrics)` after each step: the population (donated to the next
      update: use it before asking for the next step) and host `Metrics` `[P]`.

    Raises:
      InputError: the tasks or the members do not divide by the mesh (`distributed.check_learner`
        checks a pooled learner's pool).
    """
    if mesh is None:
        update = jax.jit(learner.update, donate_argnums=0)
    else:
        update, value = distributed.shard_population(learner.update, value, mesh, learner.num_tasks, learner.pooled)
    for step in range(start, num_steps):
        value, metrics = update(value)
        yield step, value, jax.device_get(metrics)


def train_population(learner: PopulationLearner, num_steps: int,
                     callback: Callable[[int, Metrics], None] | None = None) -> tuple[Population, list[Metrics]]:
    """Train every member `num_steps` meta-steps from its start, in one compiled update.

    Args:
      learner: from `make_population`.
      num_steps: the meta-steps of each member.
      callback: called as `callback(step, metrics)` after each step, with host `Metrics` `[P]`.

    Returns:
      `(population, history)`: the trained population and every step's `Metrics` `[P]`, on the host.
    """
    value, history = learner.init(), []
    for step, value, metrics in population_steps(learner, value, 0, num_steps):
        history.append(metrics)
        if callback is not None:
            callback(step, metrics)
    return value, history


def member_returns(config: MetaConfig, family: TaskFamily, value: Population, seeds: Sequence[int], *,
                   num_episodes: int, num_steps: int, num_seeds: int = 1, test_batch: int = 0,
                   random_init: bool = False, budget: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Every member's meta-test on the held-out tasks, as its run alone is tested, in one program.

    Member i is tested as `metaq train` tests its run: key `seed_i + 1`, `num_seeds` trials on
    each of the family's T test tasks (`evaluate.learner_returns`); a random initialisation made
    with the member's settings, on the same keys, when asked (`evaluate.paired_returns`). One
    compile serves every member, where testing them one by one compiles once per member.

    Args:
      config: the population's shared settings.
      family: the tasks.
      value: the trained population, `[P]` members.
      seeds: each member's seed, `[P]`.
      num_episodes: E of the trial.
      num_steps: K of the inner-steps protocol (gradient kind).
      num_seeds: S trials per task.
      test_batch: tasks tested at once (each with every member's trials), the rest in sequence;
        0: all of them, or as many as fit in memory (`evaluate.fitted_test`).
      random_init: also test each member's random initialisation.
      budget: the bytes the test may take when `test_batch` is 0; None: `evaluate.memory_budget()`.

    Returns:
      `protocol -> {"meta-learned" (and "random_init"): [P, S × T, points]}` on the host.
    """
    tasks = family.test_tasks()
    args = (value.states, value.hyperparams, jnp.asarray(seeds, jnp.uint32))

    def compile_at(batch):
        def one(state, values, seed):
            learner, key = make_meta_learner(runtime_config(config, values), family), jax.random.key(seed + 1)
            starts = {LEARNED: state}
            if random_init:
                starts["random_init"] = learner.init(jax.random.key(RANDOM_INIT_SEED))
            return {protocol: {name: per_task_seed(batched, start, tasks, key, num_seeds)
                               for name, start in starts.items()}
                    for protocol, batched in programs(learner, num_episodes, num_steps, batch).items()}

        return jax.jit(each_member(one, len(seeds), member_batch(config, len(seeds)))).lower(*args).compile()

    compiled = compile_at(test_batch) if test_batch else fitted_test(
        compile_at, count_tasks(tasks), memory_budget() if budget is None else budget)[0]
    out = jax.device_get(compiled(*args))
    return {protocol: {name: np.asarray(out[protocol][name]) for name in (LEARNED, "random_init") if name in out[protocol]}
            for protocol in PROTOCOLS if protocol in out}  # pytrees sort their keys: the reports' order back
