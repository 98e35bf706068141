"""Scale-out: the task axis of a meta-step sharded over a device mesh, across hosts too.

The task batch and everything computed per task (env states, transitions, adapted parameters)
are split along the mesh axis `task`; meta-parameters and optimiser state are replicated. The
meta-step is plain `jax.jit` with `NamedSharding`s: `shard_map` would need care, as its default
silently sums gradients w.r.t. replicated parameters across devices and so mixes tasks.
"""

import chex
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from metaq_jax.types import MetaState, Metrics, UpdateFn

TASK_AXIS = "task"

def is_writer() -> bool:
    """True on the one process that writes logs and checkpoints (process 0)."""
    return jax.process_index() == 0


def mesh_devices(devices: int) -> list:
    """The first `devices` local devices of every process (0: all of them), in process order.

    Raises `ValueError` when a process has fewer local devices than asked for.
    """
    local = jax.local_device_count()
    if not 0 <= devices <= local:
        raise ValueError(f"MetaConfig.devices = {devices}: this process has {local} local device(s); "
                         f"give 1 to {local}, or 0 for all")
    per_process = devices or local
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    return [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:per_process]]


def make_mesh(devices: int = 0) -> Mesh:
    """A 1-D mesh with axis `task` over `devices` local devices of each process (0: all)."""
    return Mesh(np.array(mesh_devices(devices)), (TASK_AXIS,), axis_types=(AxisType.Auto,))


def mesh_shape(mesh: Mesh) -> dict[str, int]:
    """`{"task": number of devices}`, as recorded in config.json and reported at start."""
    return dict(mesh.shape)


def check_divisible(num_tasks: int, mesh: Mesh) -> None:
    """`ValueError` unless the task batch splits evenly over the mesh's `task` axis."""
    size = mesh.shape[TASK_AXIS]
    if num_tasks % size:
        raise ValueError(f"MetaConfig.num_tasks = {num_tasks}: does not divide by the {size} devices of the "
                         f"mesh's task axis; give a multiple of {size}, or fewer devices (--devices) "
                         f"whose total divides {num_tasks}")


def task_groups() -> int:
    """Devices on the `task` axis of the mesh in use while tracing; 1 outside a mesh."""
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.shape[TASK_AXIS] if TASK_AXIS in mesh.axis_names else 1


def along_tasks(tree):
    """Shard the leading (task) axis of every leaf over the mesh in use; identity outside one.

    Called on the sampled task parameters and keys inside `update`, so that the vmapped per-task
    work is partitioned along `task` rather than replicated on every device.
    """
    if TASK_AXIS not in jax.sharding.get_abstract_mesh().axis_names:
        return tree
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, P(TASK_AXIS)), tree)


def replicate(tree, mesh: Mesh):
    """Put `tree` (typed PRNG keys allowed) on every device of `mesh`, across processes too.

    Each process must pass the same values: the state and run key are derived from the seed.
    """
    sharding = NamedSharding(mesh, P())

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(jax.device_get(x)), sharding)

    return jax.tree.map(put, tree)


def shard_update(update: UpdateFn, mesh: Mesh, num_tasks: int) -> UpdateFn:
    """A learner's `update` jitted over `mesh`: inputs and outputs replicated, tasks split.

    Raises `ValueError` before compiling when `num_tasks` does not divide by the mesh size.
    """
    check_divisible(num_tasks, mesh)
    replicated = NamedSharding(mesh, P())
    jitted = jax.jit(update, in_shardings=replicated, out_shardings=replicated)

    def sharded(state: MetaState, key: chex.PRNGKey) -> tuple[MetaState, Metrics]:
        with jax.set_mesh(mesh):  # lets `along_tasks` see the mesh while `update` is traced
            return jitted(state, key)

    return sharded
