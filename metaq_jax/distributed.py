"""Scale-out: the task axis of a meta-step sharded over a device mesh, across hosts too.

The task batch and everything computed per task (env states, transitions, adapted parameters)
are split along the mesh axis `task`; meta-parameters and optimiser state are replicated, and so
is a learner's own state, except a pooled one (the off-policy learners' training tasks and their
replays), which is split along `task` too, so that each device holds its share of the pool. A
population's members are split along a second axis `member`, tasks along `task` within it. The
meta-step is plain `jax.jit` with `NamedSharding`s: `shard_map` would need care, as its default
silently sums gradients w.r.t. replicated parameters across devices and so mixes tasks.
"""

import os
from typing import Any, Callable, Mapping

import chex
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from metaq_jax.errors import InputError
from metaq_jax.types import MetaState, Metrics, UpdateFn

TASK_AXIS = "task"
MEMBER_AXIS = "member"

# The settings of `initialize` and the environment variables that give them. JAX itself reads
# only JAX_COORDINATOR_ADDRESS; the other two follow its naming.
ENV_VARS = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
            "process_id": "JAX_PROCESS_ID"}
# Schedulers whose processes join by themselves: JAX's cluster detection method, the variables
# it reads (all present inside a job step) and the one that counts the processes.
CLUSTERS = {
    "slurm": (("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"),
              "SLURM_NTASKS"),
    "ompi": (("OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE"), "OMPI_COMM_WORLD_SIZE"),
}


def settings_from(environ: Mapping[str, str]) -> dict:
    """The `initialize` settings that `environ` gives (JAX_COORDINATOR_ADDRESS, ...); {} for none.

    Args:
      environ: a mapping of environment variables, e.g. `os.environ`.

    Returns:
      `{setting: value}` for each variable set, counts and ids as ints.

    Raises:
      InputError: a count or id is not a non-negative integer.
    """
    settings = {}
    for name, var in ENV_VARS.items():
        value = environ.get(var, "").strip()
        if not value:
            continue
        if name != "coordinator_address":
            if not value.isdigit():
                raise InputError(f"{var} = {value!r}: must be a non-negative integer")
            value = int(value)
        settings[name] = value
    return settings


def detected_cluster(environ: Mapping[str, str]) -> str | None:
    """The scheduler (`"slurm"` or `"ompi"`) that started this process as one of several, or None.

    Args:
      environ: a mapping of environment variables, e.g. `os.environ`.

    Returns:
      The name of JAX's cluster detection method to join with, when every variable it reads is
      set and the job step has more than one process; None otherwise.
    """
    for method, (variables, count) in CLUSTERS.items():
        if all(var in environ for var in variables) and environ[count].strip().isdigit() \
                and int(environ[count]) > 1:
            return method
    return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Join the multi-process run this process is part of; call it before any JAX computation.

    The settings are the arguments given, else the environment variables JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES and JAX_PROCESS_ID; with none of them, a job step of several processes
    under SLURM (`srun`) or Open MPI (`mpirun`) is joined as JAX detects it. Settings left out
    are detected by JAX the same way. Anything else is a single-process run: nothing happens.

    Args:
      coordinator_address: `host:port` of process 0, the same for every process.
      num_processes: the processes in the run.
      process_id: this process, 0 to `num_processes - 1`; 0 writes logs and checkpoints.

    Returns:
      True when this process joined a multi-process run, False for a single-process one.

    Raises:
      InputError: an environment variable is malformed, or JAX refuses the settings (e.g. its
        backend was already started).
    """
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
             "process_id": process_id}
    settings = {**settings_from(os.environ), **{k: v for k, v in given.items() if v is not None}}
    method = None if settings else detected_cluster(os.environ)
    if not settings and method is None:
        return False
    try:
        jax.distributed.initialize(**settings, cluster_detection_method=method)
    except (ValueError, TypeError, RuntimeError) as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        described = ", ".join(f"{k}={v!r}" for k, v in {**settings, "cluster": method}.items() if v is not None)
        raise InputError(f"jax.distributed.initialize({described}) failed: {first}") from None
    return True


def is_writer() -> bool:
    """True on the one process that writes logs and checkpoints (process 0).

    Returns:
      Whether `jax.process_index()` is 0.
    """
    return jax.process_index() == 0


def mesh_devices(devices: int) -> list:
    """The first `devices` local devices of every process (0: all of them), in process order.

    Raises `ValueError` when a process has fewer local devices than asked for.

    Args:
      devices: local devices per process; 0 for all of them.

    Returns:
      The devices, grouped by process index and ordered by id within a process.

    Raises:
      InputError: `devices` is negative or more than this process's local devices.
    """
    local = jax.local_device_count()
    if not 0 <= devices <= local:
        raise InputError(f"MetaConfig.devices = {devices}: this process has {local} local device(s); "
                         f"give 1 to {local}, or 0 for all")
    per_process = devices or local
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    return [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:per_process]]


def make_mesh(devices: int = 0, members: int = 1) -> Mesh:
    """A mesh with axis `task` over `devices` local devices of each process (0: all); with
    `members` > 1, a 2-D mesh `(member, task)` that splits them into `members` groups.

    Args:
      devices: local devices per process; 0 for all of them.
      members: devices along a population's `member` axis; 1 for a 1-D `task` mesh.

    Returns:
      The `Mesh`, its devices as `mesh_devices` orders them (row-major over `(member, task)`).

    Raises:
      InputError: `devices` is negative or more than this process's local devices, or the
        devices do not split into `members` groups.
    """
    found = np.array(mesh_devices(devices))
    if members == 1:
        return Mesh(found, (TASK_AXIS,), axis_types=(AxisType.Auto,))
    if not isinstance(members, int) or members < 1 or found.size % members:
        raise InputError(f"member devices = {members!r}: must be a positive integer dividing the "
                         f"{found.size} devices")
    return Mesh(found.reshape(members, -1), (MEMBER_AXIS, TASK_AXIS), axis_types=(AxisType.Auto,) * 2)


def mesh_shape(mesh: Mesh) -> dict[str, int]:
    """`{"task": number of devices}`, as recorded in config.json and reported at start.

    Args:
      mesh: the mesh.

    Returns:
      The mesh's axis sizes by name.
    """
    return dict(mesh.shape)


def check_divisible(num_tasks: int, mesh: Mesh, field: str = "num_tasks") -> None:
    """`ValueError` unless a count of tasks splits evenly over the mesh's `task` axis.

    Args:
      num_tasks: T, tasks per meta-step (or N, a pooled learner's `task_pool`).
      mesh: a mesh with a `task` axis.
      field: the `MetaConfig` field `num_tasks` comes from, for the message.

    Returns:
      None.

    Raises:
      InputError: `num_tasks` is not a multiple of the `task` axis's size.
    """
    size = mesh.shape[TASK_AXIS]
    if num_tasks % size:
        raise InputError(f"MetaConfig.{field} = {num_tasks}: does not divide by the {size} devices of the "
                         f"mesh's task axis; give a multiple of {size}, or fewer devices (--devices) "
                         f"whose total divides {num_tasks}")


def check_learner(config, learner, mesh: Mesh) -> None:
    """`ValueError` unless `learner`'s tasks (and its pool, when pooled) split over the mesh's `task` axis.

    Args:
      config (MetaConfig): its `num_tasks` and `task_pool` are read.
      learner (MetaLearner | PopulationLearner): its `pooled` is read.
      mesh: a mesh with a `task` axis.

    Returns:
      None.

    Raises:
      InputError: a count does not divide by the `task` axis's size.
    """
    check_divisible(config.num_tasks, mesh)
    if learner.pooled:
        check_divisible(config.task_pool, mesh, "task_pool")


def member_axis() -> str | None:
    """`"member"` while tracing under a mesh with that axis (a population's update), else None.

    Returns:
      The axis name to shard a population's leading axis along (`vmap`'s `spmd_axis_name`), or None.
    """
    return MEMBER_AXIS if MEMBER_AXIS in jax.sharding.get_abstract_mesh().axis_names else None


def task_groups() -> int:
    """Devices on the `task` axis of the mesh in use while tracing; 1 outside a mesh.

    Returns:
      The size of the abstract mesh's `task` axis, or 1.
    """
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.shape[TASK_AXIS] if TASK_AXIS in mesh.axis_names else 1


def along_tasks(tree):
    """Shard the leading (task) axis of every leaf over the mesh in use; identity outside one.

    Called on the sampled task parameters and keys inside `update`, so that the vmapped per-task
    work is partitioned along `task` rather than replicated on every device.

    Args:
      tree (Any): a pytree of arrays whose leading axis is split (in `update`, `[devices, T / devices, ...]`).

    Returns:
      (Any): `tree` with a sharding constraint `P("task")` on every leaf, or `tree` itself.
    """
    if TASK_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
        return tree
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, P(TASK_AXIS)), tree)


def replicate(tree, mesh: Mesh):
    """Put `tree` (typed PRNG keys allowed) on every device of `mesh`, across processes too.

    Each process must pass the same values: the state and run key are derived from the seed.

    Args:
      tree (Any): a pytree of arrays or typed PRNG keys.
      mesh: the mesh to replicate over.

    Returns:
      (Any): `tree` with every leaf a global array, fully replicated over `mesh`.
    """
    return _put(tree, NamedSharding(mesh, P()))


def _put(tree, sharding: NamedSharding):
    """Every leaf of `tree` (typed PRNG keys allowed) placed with `sharding`."""
    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(jax.device_get(x)), sharding)

    return jax.tree.map(put, tree)


def state_sharding(state: MetaState, mesh: Mesh, pooled: bool, *, members: bool = False) -> MetaState:
    """How a learner's state lies on `mesh`: replicated, a pooled learner state split along `task`.

    Args:
      state: the state (or a population's states), for its structure.
      mesh: a mesh from `make_mesh`.
      pooled: the learner state is a pool of training tasks, every leaf `[N, ...]` (`MetaLearner.pooled`).
      members: every leaf has a leading `[P]` population axis, split along `member` when the mesh has one.

    Returns:
      A `MetaState` of `NamedSharding`s, one per leaf of `state`.
    """
    lead = (MEMBER_AXIS if MEMBER_AXIS in mesh.axis_names else None,) if members else ()
    whole, pool = NamedSharding(mesh, P(*lead)), NamedSharding(mesh, P(*lead, TASK_AXIS))
    shardings = jax.tree.map(lambda _: whole, state)
    return shardings._replace(learner_state=jax.tree.map(lambda _: pool if pooled else whole, state.learner_state))


def place(tree, shardings):
    """Put every leaf of `tree` (typed PRNG keys allowed) with its sharding in `shardings`, across processes too.

    Each process must pass the same values, as for `replicate`.

    Args:
      tree (Any): a pytree of arrays or typed PRNG keys, on the host or on devices.
      shardings (Any): a `NamedSharding` for each leaf of `tree` (its structure).

    Returns:
      (Any): `tree` with every leaf a global array laid out as its sharding says.
    """
    return jax.tree.map(lambda x, sharding: _put(x, sharding), tree, shardings)


def host_copy(tree):
    """`tree` on the host, whole: a leaf split over several processes is gathered from all of them.

    Every process must call it (a collective) when some leaf is split across processes.

    Args:
      tree (Any): a pytree of arrays, replicated or split.

    Returns:
      (Any): the same pytree of numpy arrays, each leaf's global value.
    """
    def copy(x):
        if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return jax.device_get(x)

    return jax.tree.map(copy, tree)


def population_sharding(mesh: Mesh) -> NamedSharding:
    """How a population's `[P, ...]` leaves lie on `mesh`: split along `member`, else replicated.

    Args:
      mesh: a mesh from `make_mesh`.

    Returns:
      `P("member")` on a mesh with a `member` axis, `P()` otherwise.
    """
    return NamedSharding(mesh, P(MEMBER_AXIS) if MEMBER_AXIS in mesh.axis_names else P())


def shard_population(update: Callable, population, mesh: Mesh, num_tasks: int,
                     pooled: bool = False) -> tuple[Callable, Any]:
    """A population's `update` jitted over `mesh`, and the population placed on it.

    Members are split along the mesh's `member` axis (when it has one), each member's tasks along
    `task`, and a pooled learner state's pool along `task` too.

    Args:
      update: `update(population) -> (population, Metrics[P])`.
      population (Any): its initial value (`population.Population`), every leaf `[P, ...]`.
      mesh: a mesh from `make_mesh`.
      num_tasks: T, each member's tasks per meta-step.
      pooled: the members' learner states are pools of training tasks (`MetaLearner.pooled`).

    Returns:
      (tuple[Callable, Any]): `(sharded_update, population on the mesh)`.

    Raises:
      InputError: T does not divide by the `task` axis, or P by the `member` axis.
    """
    check_divisible(num_tasks, mesh)
    size, members = mesh.shape.get(MEMBER_AXIS, 1), len(jax.tree.leaves(population)[0])
    if members % size:
        raise InputError(f"population of {members} members: does not divide by the {size} devices of the "
                         f"mesh's member axis; give a multiple of {size} members, or fewer member devices")
    sharding = jax.tree.map(lambda _: population_sharding(mesh), population)
    sharding = sharding._replace(states=state_sharding(population.states, mesh, pooled, members=True))
    jitted = jax.jit(update, in_shardings=(sharding,), out_shardings=(sharding, population_sharding(mesh)))

    def sharded(value):
        with jax.set_mesh(mesh):  # lets `along_tasks` and `member_axis` see the mesh while tracing
            return jitted(value)

    return sharded, place(population, sharding)


def shard_update(update: UpdateFn, mesh: Mesh, num_tasks: int, sharding: MetaState | None = None) -> UpdateFn:
    """A learner's `update` jitted over `mesh`: tasks split, the state laid out as `sharding` says.

    Raises `ValueError` before compiling when `num_tasks` does not divide by the mesh size.

    Args:
      update: a learner's `update(state, key) -> (state, Metrics)`.
      mesh: a mesh with a `task` axis.
      num_tasks: T, the learner's `config.num_tasks`.
      sharding: the state's layout (`state_sharding`), in and out; None: replicated.

    Returns:
      `sharded(state, key) -> (state, Metrics)`: the jitted `update`, traced and run under `mesh`
      (`jax.set_mesh`); the key and metrics replicated.

    Raises:
      InputError: `num_tasks` is not a multiple of the mesh's `task` axis size.
    """
    check_divisible(num_tasks, mesh)
    replicated = NamedSharding(mesh, P())
    state = replicated if sharding is None else sharding
    jitted = jax.jit(update, in_shardings=(state, replicated), out_shardings=(state, replicated))

    def sharded(state: MetaState, key: chex.PRNGKey) -> tuple[MetaState, Metrics]:
        with jax.set_mesh(mesh):  # lets `along_tasks` see the mesh while `update` is traced
            return jitted(state, key)

    return sharded
