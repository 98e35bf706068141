"""The task axis sharded over 2 and 4 simulated CPU devices and over two processes gives the
one-device result (a learner over TD3 on continuous actions too); a batch that does not divide by the devices is refused before compiling.

Devices are simulated with XLA_FLAGS, which JAX reads when it starts: every case runs in a
subprocess. One subprocess computes all device counts and algorithms and prints JSON.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import device_env
import metaq_jax as mq
from metaq_jax import checkpoints, distributed, population, runs, session, sweep
from metaq_jax.errors import InputError

TINY = dict(family="bandit", num_tasks=4, num_envs=2, rollout_length=10, hidden_sizes=(8,), inner_steps=1)
MEMORY_TINY = dict(family="bandit-k5-n10", num_tasks=4, num_envs=2, hidden_sizes=(8,), algo="rl2", gamma=0.9,
                   trial_episodes=1)
PEARL_TINY = {**MEMORY_TINY, "algo": "pearl", "task_pool": 8, "batch_size": 8, "context_size": 4, "replay_size": 64}
LEARNERS = {"maml": TINY, "fomaml": {**TINY, "algo": "fomaml"}, "reptile": {**TINY, "algo": "reptile"},
            "rl2": {**MEMORY_TINY, "cell_size": 8},  # every memory learner shares rl2's update
            "pearl": PEARL_TINY,  # every pooled learner shares pearl's update and placement
            # mql's sampled windows are gathered from the whole pool's replay, split along `task`
            "mql": {**MEMORY_TINY, "algo": "mql", "task_pool": 8, "batch_size": 8, "replay_size": 60,
                    "history_length": 2, "adapt_steps": 1, "propensity_samples": 8},
            # over TD3 on continuous actions (tests/helpers' test-point family): actor and critics, second order
            "maml td3": {"family": "test-point", "num_tasks": 4, "num_envs": 2, "rollout_length": 6,
                         "hidden_sizes": (8,), "inner_steps": 2, "inner_lr": 0.05, "gamma": 0.9}}
ALGOS = tuple(LEARNERS)
DEVICE_COUNTS = (2, 4)  # against plain jit on one device; a one-device mesh runs in every CLI test
UPDATES = 3
SGD_LR = 0.1  # the meta-gradient is (θ0 - θ1) / lr after one plain SGD step

# For each algorithm: the parameters after 1 and after UPDATES updates, plain jit on one device
# ("ref") and sharded over each device count; then the refusal of a batch of 6 on 4 devices.
SCRIPT = f"""
import json, sys, jax, numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from helpers import flat  # helpers also registers the continuous test-point family
from metaq_jax import MetaConfig, make_meta_learner, distributed
from metaq_jax.training import initial_state, step_key

def run(learner, config, mesh=None):
    state, run_key = initial_state(learner, 0)
    update = jax.jit(learner.update)
    if mesh is not None:
        sharding = distributed.state_sharding(state, mesh, learner.pooled)
        update = distributed.shard_update(learner.update, mesh, config.num_tasks, sharding)
        state, run_key = distributed.place(state, sharding), distributed.replicate(run_key, mesh)
    after = []
    for step in range({UPDATES}):
        state, _ = update(state, step_key(run_key, step))
        after.append(flat(state.params).tolist())
    # rows of the learner state (a pooled learner's pool) that one device holds
    rows = [len(x.addressable_shards[0].data) for x in jax.tree.leaves(state.learner_state)]
    return {{"init": flat(initial_state(learner, 0)[0].params).tolist(), "one": after[0], "last": after[-1],
             "pool": flat(state.learner_state).tolist(), "rows": sorted(set(rows))}}

out = {{}}
for algo, fields in {LEARNERS!r}.items():
    config = MetaConfig(outer_optimizer="sgd", outer_lr={SGD_LR}, **fields)
    learner = make_meta_learner(config)
    out[algo] = {{"ref": run(learner, config)}}
    for n in {DEVICE_COUNTS!r}:
        out[algo][str(n)] = run(learner, config, distributed.make_mesh(n))
try:
    distributed.shard_update(learner.update, distributed.make_mesh(4), 6)
except ValueError as error:
    out["refusal"] = str(error)
pearl = MetaConfig(**{{**{PEARL_TINY!r}, "task_pool": 6}})
try:
    distributed.check_learner(pearl, make_meta_learner(pearl), distributed.make_mesh(4))
except ValueError as error:
    out["pool refusal"] = str(error)
# the protocol's training population of 2 seeds: on one device, and split along `task` over 2 and 4
from metaq_jax import make_family, population, protocol
config = MetaConfig(**{TINY!r})
pop = population.make_population(config, make_family(config.family), [{{"seed": 0}}, {{"seed": 1}}])
out["protocol"] = {{str(n): flat(protocol.train_resumable(
    pop, {UPDATES}, None, mesh=None if n == 1 else distributed.make_mesh(n))[0].states.params).tolist()
    for n in (1,) + {DEVICE_COUNTS!r}}}
_, value, _ = next(population.population_steps(pop, pop.init(), 0, 1, distributed.make_mesh(2)))
out["protocol devices"] = sorted({{len(x.sharding.device_set) for x in jax.tree.leaves(value.states)}})
six = MetaConfig(**{{**{TINY!r}, "num_tasks": 6}})
try:
    protocol.run_protocol(six)
except ValueError as error:
    out["protocol refusal"] = str(error)
try:  # the mesh reaches the training itself
    protocol.train_resumable(population.make_population(six, make_family(six.family), [{{"seed": 0}}]), 1, None,
                             mesh=distributed.make_mesh(4))
except ValueError as error:
    out["training refusal"] = str(error)
print(json.dumps(out))
"""


def _env(devices: int, **extra) -> dict:
    return device_env(devices, **extra)


@pytest.fixture(scope="module")
def sharded():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(4), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _errors(a, b) -> tuple[float, float]:
    """(max abs difference, max abs difference / max |b|)."""
    a, b = np.asarray(a), np.asarray(b)
    diff = float(np.max(np.abs(a - b)))
    return diff, diff / float(np.max(np.abs(b)))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_devices_give_the_one_device_meta_gradient_and_params(sharded, algo, devices):
    ref, got = sharded[algo]["ref"], sharded[algo][str(devices)]
    init = np.asarray(ref["init"])
    grad_ref = (init - np.asarray(ref["one"])) / SGD_LR
    grad = (init - np.asarray(got["one"])) / SGD_LR
    assert np.abs(grad_ref).max() > 1e-3  # a real gradient, not zeros on both sides
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-5 * np.abs(grad_ref).max())
    np.testing.assert_allclose(got["last"], ref["last"], rtol=1e-5, atol=1e-6)
    print(f"{algo} {devices} devices: meta-gradient err (abs, rel) {_errors(grad, grad_ref)}, "
          f"params after {UPDATES} updates {_errors(got['last'], ref['last'])}")


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_a_pooled_learner_state_is_split_along_task_and_equals_one_device(sharded, devices):
    """pearl's pool of 8 tasks and their replays: each device holds 8 / devices of them (the rest of
    every learner state, none here, is replicated), and after the updates the pool is the
    one-device pool exactly (the split moves data, it computes nothing)."""
    ref, got = sharded["pearl"]["ref"], sharded["pearl"][str(devices)]
    assert got["rows"] == [PEARL_TINY["task_pool"] // devices]
    assert ref["rows"] == [PEARL_TINY["task_pool"]]
    np.testing.assert_array_equal(got["pool"], ref["pool"])
    assert sharded["rl2"][str(devices)]["rows"] == sharded["rl2"]["ref"]["rows"]  # a memory learner's state: whole


def test_a_pool_not_dividing_by_the_devices_is_refused(sharded):
    assert sharded["pool refusal"].startswith("MetaConfig.task_pool = 6: does not divide by the 4 devices")


def test_a_batch_not_dividing_by_the_devices_is_refused(sharded):
    assert sharded["refusal"] == ("MetaConfig.num_tasks = 6: does not divide by the 4 devices of the mesh's "
                                  "task axis; give a multiple of 4, or fewer devices (--devices) whose total "
                                  "divides 6")


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_the_protocol_trains_its_population_on_every_device_as_on_one(sharded, devices):
    ref, got = sharded["protocol"]["1"], sharded["protocol"][str(devices)]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert sharded["protocol devices"] == [2]  # a step on a mesh of 2 leaves the population on both
    assert sharded["protocol refusal"].startswith("MetaConfig.num_tasks = 6: does not divide by the 4 devices")
    assert sharded["training refusal"] == sharded["protocol refusal"]


CLI_TINY = ["--family", "bandit", "--num-tasks", "4", "--num-envs", "2", "--rollout-length", "10",
            "--hidden-sizes", "8", "--inner-steps", "1", "--outer-optimizer", "sgd", "--outer-lr", str(SGD_LR),
            "--meta-steps", str(UPDATES), "--trial-episodes", "1"]  # SCRIPT's maml config (+ a shorter meta-test)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_a_sweep_whose_members_match_one_process(sharded, tmp_path):
    """`metaq sweep --seeds 2` over two processes of 2 devices each, joined by flags (process 0) and
    by environment variables (process 1): member 0 (seed 0) ends where the one-process run of SCRIPT
    does. Process 1 was given its own run dir: it stays absent, as only process 0 writes."""
    port = _free_port()
    command = [sys.executable, "-m", "metaq_jax", "sweep", *CLI_TINY, "--seeds", "2", "--run-dir"]
    procs = [
        subprocess.Popen([*command, str(tmp_path / "p0"), "--coordinator-address", f"localhost:{port}",
                          "--num-processes", "2", "--process-id", "0"],
                         env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([*command, str(tmp_path / "p1")],
                         env=_env(2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                                  JAX_PROCESS_ID="1"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "metaq sweep: 2 members of maml on bandit in one program, mesh {'task': 4}" in outs[0]
    assert not os.path.exists(tmp_path / "p1")
    run_dir = str(tmp_path / "p0")
    config, members = runs.stored_config(run_dir), sweep.stored_members(run_dir)
    value = population.make_population(config, mq.make_family(config.family), members).init()
    directory = runs.path(run_dir, runs.CHECKPOINTS)
    restored = checkpoints.restore(directory, checkpoints.latest_step(directory), value.states, value.run_keys)
    got = np.concatenate([np.ravel(x[0]) for x in jax.tree.leaves(restored.state.params)])
    np.testing.assert_allclose(got, sharded["maml"]["ref"]["last"], rtol=1e-5, atol=1e-6)


PEARL_FLAGS = [token for name, value in PEARL_TINY.items()
               for token in (f"--{name.replace('_', '-')}", " ".join(map(str, value)) if isinstance(value, tuple) else str(value))]


def _free_slurm_port() -> int:
    """A free port among the ones JAX derives from a SLURM job id: 61440 + job id % 4096."""
    for port in range(61440 + os.getpid() % 4096, 65536):
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 61440-65535")


def test_two_slurm_processes_join_by_themselves(sharded, tmp_path):
    """`srun -n 2 metaq train ...` with no flags: the SLURM variables alone make one run of two
    processes (JAX's cluster detection), whose result is the one-process run's; only process 0 writes.
    The run is pearl's: its pool is split over all 4 devices, so each process holds half, and process
    0's checkpoint, gathered from both, restores here to the one-process parameters and pool."""
    job_id = _free_slurm_port() - 61440
    slurm = dict(SLURM_JOB_ID=str(job_id), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
                 SLURM_STEP_NUM_NODES="1")
    run_dir = str(tmp_path / "run")
    pearl = [*PEARL_FLAGS, "--outer-optimizer", "sgd", "--outer-lr", str(SGD_LR), "--meta-steps", str(UPDATES),
             "--no-pretrain"]
    procs = [subprocess.Popen([sys.executable, "-m", "metaq_jax", "train", *pearl, "--run-dir", run_dir],
                              env=_env(2, **slurm, SLURM_PROCID=str(i), SLURM_LOCALID=str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "cpu mesh {'task': 4} (2 device(s) × 2 process(es)), new run" in outs[0]
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["mesh"] == {"task": 4}
    state, ref = session.load_run(run_dir)[3], sharded["pearl"]["ref"]
    np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.params)]), ref["last"],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.learner_state)]),
                                  ref["pool"])


def test_cluster_detection_needs_every_variable_and_several_processes():
    slurm = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="n1", SLURM_NTASKS="2", SLURM_PROCID="0", SLURM_LOCALID="0")
    assert distributed.detected_cluster(slurm) == "slurm"
    assert distributed.detected_cluster({**slurm, "SLURM_NTASKS": "1"}) is None  # one task: nothing to join
    assert distributed.detected_cluster({k: v for k, v in slurm.items() if k != "SLURM_PROCID"}) is None
    assert distributed.detected_cluster({"OMPI_MCA_orte_hnp_uri": "1;tcp://h:1", "OMPI_COMM_WORLD_SIZE": "4"}) == "ompi"
    assert distributed.detected_cluster({}) is None


def test_settings_from_the_environment():
    assert distributed.settings_from({}) == {}
    assert distributed.settings_from({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2",
                                      "JAX_PROCESS_ID": "1"}) == dict(coordinator_address="h:1", num_processes=2,
                                                                      process_id=1)
    with pytest.raises(InputError, match="JAX_PROCESS_ID = 'one': must be a non-negative integer"):
        distributed.settings_from({"JAX_PROCESS_ID": "one"})
