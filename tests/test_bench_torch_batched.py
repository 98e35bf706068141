"""The batched PyTorch peers compute metaq_jax's meta-gradient, and their CartPole is the reference's per task."""

import jax
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from metaq_jax.bench import gate, suite
from metaq_jax.bench import torch_batched as tb
from metaq_jax.bench import torch_reference as ref

CONFIG = suite.workload("maml", 3, 2, num_envs=4, rollout_length=5).replace(inner_lr=0.3)  # α large: SO ≠ FO


@pytest.fixture(scope="module")
def data():
    return gate.tasks_data(CONFIG, jax.random.key(0), 3)


@pytest.mark.parametrize("algo", gate.ALGOS)
@pytest.mark.parametrize("mode", tb.MODES)
def test_the_batched_peer_computes_metaq_jax_mean_direction_in_every_chunking(data, algo, mode):
    config = CONFIG.replace(algo=algo)
    want = gate.jax_mean_direction(config, *data)
    for chunk in (1, 2, 3):  # 2 leaves a chunk of one task behind
        got = gate.batched_direction(config, *data, chunk=chunk, mode=mode)
        assert gate.relative_error(got, want) <= gate.RTOL, (chunk, gate.relative_error(got, want))


def test_the_batched_peer_tells_second_from_first_order(data):
    second = gate.jax_mean_direction(CONFIG, *data)
    first = gate.batched_direction(CONFIG.replace(algo="fomaml"), *data, chunk=3, mode="bmm")
    assert gate.relative_error(first, second) > 100 * gate.RTOL


def test_the_batched_forward_is_each_tasks_own_network():
    layers = [tb.layers_from_flax(gate.gate_data(CONFIG, jax.random.key(k))[0]) for k in range(2)]
    stacked = [torch.stack(ps) for ps in zip(*layers)]
    obs = torch.randn(2, 7, 4)
    net = ref.make_network(4, CONFIG.hidden_sizes, 2)
    for t in range(2):
        params = ref.params_from_flax(tb.layers_to_flax(layers[t]))
        want = torch.func.functional_call(net, params, (obs[t],))
        torch.testing.assert_close(tb.forward(stacked, obs)[t], want)


def test_each_task_of_the_batched_cartpole_steps_as_its_own_env():
    tasks = [{"gravity": 4.9, "length": 0.25, "masspole": 0.05}, {"gravity": 14.7, "length": 0.75, "masspole": 0.15}]
    batched = tb.BatchedCartPole(num_tasks=2, num_envs=3)
    batched.set_tasks(tasks)
    obs, _ = batched.env.reset(seed=0)
    actions = np.array([0, 1, 1, 1, 0, 1])
    next_obs, *_ = batched.env.step(actions)
    for t, physics in enumerate(tasks):
        alone = CartPoleVectorEnv(num_envs=3)
        ref.set_physics(alone, **physics)
        alone.reset(seed=0)
        alone.state = obs[3 * t:3 * t + 3].T.astype(np.float64).copy()
        np.testing.assert_allclose(alone.step(actions[3 * t:3 * t + 3])[0], next_obs[3 * t:3 * t + 3], rtol=1e-6)
    assert not np.allclose(next_obs[:3], next_obs[3:])  # the physics differ between the tasks


def test_a_rollout_is_task_major_and_resets_where_done():
    batched = tb.BatchedCartPole(num_tasks=2, num_envs=3)
    batched.set_tasks(ref.sample_tasks(np.random.default_rng(0), 2))
    rng = np.random.default_rng(1)
    rollout = batched.rollout(rng, 60, tb.random_walk(rng))  # random walks fall within 60 steps
    assert rollout.obs.shape == (2, 180, 4) and rollout.action.shape == rollout.reward.shape == (2, 180)
    assert rollout.terminated.sum() > 0
    assert torch.all(rollout.obs[..., 2].abs() <= 0.21)  # every stored s is pre-termination (12° = 0.209 rad)


def test_procs_refuse_a_task_count_they_do_not_divide():
    with pytest.raises(ValueError, match="processes=2 must divide num_tasks=3"):
        tb.ProcsMetaLearner(2, num_tasks=3, variables={}, learning=None)
