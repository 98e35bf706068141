"""RL²'s pieces: the trial TD loss by hand, causality, the carry across episode ends, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import assert_compiled_once_and_batched_equal, updates_by_task_batch
import metaq_jax as mq
from metaq_jax.algos import rl2
from metaq_jax.networks import RecurrentQNetwork, rl2_inputs


def linear_recurrent(w, carry, x):
    """carry' = carry + x, q = carry' @ w: a recurrent "network" whose values are easy by hand."""
    carry = carry + x
    return carry, carry @ w


def test_trial_td_loss_hand_computed_with_an_episode_end_inside_the_trial():
    x = jnp.array([[1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 3.0]])[:, None]  # [L=4, M=1, F=2]
    # carries (1,0) (1,2) (3,2) (3,5); online Q = carry; target Q = (2 c0, c1)
    transitions = mq.Transition(obs=x, action=jnp.array([[0], [1], [1], [0]]),
                                reward=jnp.array([[1.0], [0.0], [2.0], [-1.0]]), next_obs=x,
                                terminated=jnp.array([[False], [True], [False], [False]]),
                                truncated=jnp.zeros((4, 1), bool))
    trial = rl2.Trial(inputs=x, transitions=transitions)
    # t0: online picks 1 at (1,2), target values it 2: 1 + 0.5·2 − Q(1,0)[0]=1 → δ 1
    # t1, an episode's end, not cut: online picks 0 at (3,2), target 6: 0 + 0.5·6 − 2 → δ 1
    # t2: online picks 1 at (3,5), target 5: 2 + 0.5·5 − 2 → δ 2.5
    # t3, the trial's end, cut: −1 − Q(3,5)[0]=3 → δ −4
    expected = 0.5 * np.mean(np.array([1.0, 1.0, 2.5, -4.0]) ** 2)
    got = rl2.trial_td_loss(rl2.recurrent_memory(linear_recurrent), jnp.eye(2), jnp.array([[2.0, 0.0], [0.0, 1.0]]),
                            jnp.zeros((1, 2)), trial, 0.5)
    assert float(got) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("td_lambda, expected", [
    (0.0, [1.0, 1.0, 2.5, -4.0]),  # one-step targets, as above
    # G3 = −1; G2 = 2 + 0.5 (0.5·5 + 0.5·G3) = 3; G1 = 0 + 0.5 (0.5·6 + 0.5·G2) = 2.25;
    # G0 = 1 + 0.5 (0.5·2 + 0.5·G1) = 2.0625; minus Q(a) = 1, 2, 2, 3
    (0.5, [1.0625, 0.25, 1.0, -4.0]),
    # λ = 1: the discounted return of the trial from t, across the episode end: 1.375, 0.75, 1.5, −1
    (1.0, [0.375, -1.25, -0.5, -4.0]),
])
def test_trial_td_errors_with_lambda_returns_hand_computed(td_lambda, expected):
    x = jnp.array([[1.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 3.0]])[:, None]
    transitions = mq.Transition(obs=x, action=jnp.array([[0], [1], [1], [0]]),
                                reward=jnp.array([[1.0], [0.0], [2.0], [-1.0]]), next_obs=x,
                                terminated=jnp.array([[False], [True], [False], [False]]),
                                truncated=jnp.zeros((4, 1), bool))
    got = rl2.trial_td_errors(rl2.recurrent_memory(linear_recurrent), jnp.eye(2), jnp.array([[2.0, 0.0], [0.0, 1.0]]),
                              jnp.zeros((1, 2)), rl2.Trial(inputs=x, transitions=transitions), 0.5, td_lambda)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_no_output_depends_on_a_later_step(cell):
    net = RecurrentQNetwork(num_actions=3, hidden_size=8, cell=cell, torso_sizes=(8,))
    inputs = jax.random.normal(jax.random.key(0), (6, 2, 5))
    params = net.init(jax.random.key(1), net.initial_carry((2,)), inputs[0])
    q = rl2.unroll(net.apply, params, net.initial_carry((2,)), inputs)
    for t in range(5):
        changed = inputs.at[t + 1:].add(1.0)
        q_changed = rl2.unroll(net.apply, params, net.initial_carry((2,)), changed)
        np.testing.assert_array_equal(q_changed[: t + 1], q[: t + 1])
        assert not np.allclose(q_changed[t + 1], q[t + 1])


def _tabular_setup(length=12):
    family = mq.make_family("tabular-mdp", episode_length=3)
    net = RecurrentQNetwork(num_actions=family.num_actions, hidden_size=16, torso_sizes=(16,))
    obs, _ = family.env.reset(jax.random.key(0), family.default_params)
    features = obs.shape[-1] + family.num_actions + 2
    params = net.init(jax.random.key(1), net.initial_carry((2,)), jnp.zeros((2, features)))
    return family, net, params


def test_the_carry_runs_across_episode_ends_and_restarts_with_each_trial():
    family, net, params = _tabular_setup()
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    collect = jax.jit(lambda key: rl2.collect_trial(family.env, rl2.recurrent_memory(net.apply), params,
                                                    net.initial_carry((2,)), task, key, num_envs=2, length=12,
                                                    epsilon=0.0))
    trial = collect(jax.random.key(2))
    done = trial.transitions.terminated | trial.transitions.truncated
    assert done.sum() == 8  # 3-step episodes: four per env in 12 steps, the last at the trial's end
    # the input after an episode's end says so; the first input is the trial's start
    np.testing.assert_array_equal(trial.inputs[1:, :, -1], done[:-1])
    np.testing.assert_array_equal(trial.inputs[0, :, -1], 0.0)
    # greedy actions are those of one uninterrupted unroll from the initial carry...
    q = rl2.unroll(net.apply, params, net.initial_carry((2,)), trial.inputs)
    np.testing.assert_array_equal(trial.transitions.action, jnp.argmax(q, -1))
    # ...and a carry reset at each episode end would have acted otherwise: the test can tell
    def reset_at_episode_ends(carry, xs):
        x, start = xs
        carry = jnp.where(start[:, None], net.initial_carry((2,)), carry)
        return net.apply(params, carry, x)
    starts = jnp.concatenate([jnp.ones((1, 2), bool), done[:-1]])
    q_reset = jax.lax.scan(reset_at_episode_ends, net.initial_carry((2,)), (trial.inputs, starts))[1]
    assert not np.allclose(q_reset, q)
    # a new trial starts afresh: the same key gives the same trial
    again = collect(jax.random.key(2))
    np.testing.assert_array_equal(again.inputs, trial.inputs)


def test_tasks_batched_equal_one_at_a_time():
    family, net, params = _tabular_setup()
    tasks, keys = family.test_tasks(3), jax.random.split(jax.random.key(3), 3)

    def loss(theta, task, key):
        memory_q = rl2.recurrent_memory(net.apply)
        trial = rl2.collect_trial(family.env, memory_q, theta, net.initial_carry((2,)), task, key,
                                  num_envs=2, length=12, epsilon=0.3)
        return rl2.trial_td_loss(memory_q, theta, params, net.initial_carry((2,)), trial, 0.9)

    value_and_grad = jax.value_and_grad(loss)
    batched = jax.jit(jax.vmap(value_and_grad, in_axes=(None, 0, 0)))(params, tasks, keys)
    for i in range(3):
        one = jax.jit(value_and_grad)(params, jax.tree.map(lambda x: x[i], tasks), keys[i])
        np.testing.assert_allclose(batched[0][i], one[0], rtol=1e-5)
        for a, b in zip(jax.tree.leaves(batched[1]), jax.tree.leaves(one[1])):
            np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-6)


def test_rl2_inputs_layout():
    x = rl2_inputs(jnp.array([[0.5, 0.25]]), jnp.array([-1]), jnp.array([0.0]), jnp.array([False]), 3)
    np.testing.assert_array_equal(x, [[0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0]])
    x = rl2_inputs(jnp.array([[0.5, 0.25]]), jnp.array([2]), jnp.array([1.5]), jnp.array([True]), 3)
    np.testing.assert_array_equal(x, [[0.5, 0.25, 0.0, 0.0, 1.0, 1.5, 1.0]])
    frames = jnp.array([[[True, False], [False, True]]])  # [M=1, 2, 2]: image observations are flattened
    x = rl2_inputs(frames, jnp.array([0]), jnp.array([0.0]), jnp.array([False]), 2)
    np.testing.assert_array_equal(x, [[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])


def test_the_attention_network_is_causal():
    """Perturb steps t+1.. of the sequence: the outputs of steps 0..t do not change, step t+1's does."""
    from metaq_jax.networks import AttentionQNetwork

    net = AttentionQNetwork(num_actions=3, max_length=8, filters=4, key_size=8, value_size=8, torso_sizes=(8,))
    inputs = jax.random.normal(jax.random.key(0), (8, 2, 5))  # [L, M, F]
    params = net.init(jax.random.key(1), inputs)
    q = jax.jit(net.apply)(params, inputs)
    assert q.shape == (8, 2, 3)
    for t in range(7):
        q_changed = jax.jit(net.apply)(params, inputs.at[t + 1:].add(1.0))
        np.testing.assert_allclose(q_changed[: t + 1], q[: t + 1], rtol=0, atol=1e-6)
        assert not np.allclose(q_changed[t + 1], q[t + 1])
    # a prefix alone gives the same values as the whole sequence: read step by step in a trial
    np.testing.assert_allclose(jax.jit(net.apply)(params, inputs[:5]), q[:5], rtol=1e-5, atol=1e-6)


def test_the_attention_memory_acts_as_the_whole_sequence_reads():
    """`cached_memory` steps through the trial one row of each block at a time; its values are the sequence's,
    for a sequence as long as the network's and for a shorter one (a trial cut short)."""
    from metaq_jax.networks import AttentionQNetwork

    for torso in ((8,), ()):
        net = AttentionQNetwork(num_actions=3, max_length=6, filters=4, key_size=8, value_size=8, torso_sizes=torso)
        inputs = jax.random.normal(jax.random.key(0), (6, 2, 5))
        params = net.init(jax.random.key(1), inputs)
        memory_q = rl2.cached_memory(net, 5)

        def step(cache, xs):
            x, t = xs
            return memory_q.step(params, cache, x, t)

        for length in (6, 4):
            _, stepped = jax.lax.scan(step, memory_q.initial_memory((), 2), (inputs[:length], jnp.arange(length)))
            np.testing.assert_allclose(stepped, memory_q.sequence(params, None, inputs[:length]), rtol=1e-5, atol=1e-6)


def test_the_attention_networks_sizes_are_config_fields():
    """`attention_filters` and `attention_size` size SNAIL's blocks: the head reads the torso's features, each
    convolution's filters and each attention block's values, over both rounds."""
    config = mq.MetaConfig(family="bandit-k5-n10", algo="rl2", network="attention", hidden_sizes=(8,),
                           trial_episodes=2, attention_filters=4, attention_size=8)
    net = mq.algos.default_network(config, mq.make_family(config.family))
    assert (net.filters, net.key_size, net.value_size, net.max_length) == (4, 8, 8, 20)
    params = net.init(jax.random.key(0), jnp.zeros((20, 3)))  # [L, F]
    dilations = 5  # 1, 2, 4, 8, 16 < max_length 20
    head = params["params"][f"Dense_{len(config.hidden_sizes)}"]["kernel"]
    assert head.shape == (8 + 2 * (dilations * 4 + 8), 5)


TINY = dict(family="bandit-k5-n10", algo="rl2", num_tasks=4, num_envs=2, hidden_sizes=(8,), cell_size=8,
            gamma=0.9, trial_episodes=2, meta_steps=4, outer_optimizer="sgd", outer_lr=0.1)  # Adam would magnify rounding


@pytest.fixture(scope="module", params=["gru", "attention"])
def learner_run(request):
    """Three updates of the rl2 learner, jitted once, with tasks one at a time and all at once."""
    network = ({"network": "attention", "cell_size": 64, "attention_filters": 4, "attention_size": 8}
               if request.param == "attention" else {"cell": request.param})
    config = mq.MetaConfig(**{**TINY, **network})
    return config, updates_by_task_batch(config, (1, 4))


def test_the_learner_compiles_once_and_batched_tasks_equal_one_at_a_time(learner_run):
    config, out = learner_run
    assert_compiled_once_and_batched_equal(out, 4)


def test_the_learner_trial_returns_each_episode_of_a_trial_on_its_task(learner_run):
    config, out = learner_run
    learner, state, history, _ = out[1]
    assert np.isfinite(np.array(history)).all()
    family = mq.make_family(config.family)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    returns = jax.jit(lambda k: learner.trial(state, task, k, 2))(jax.random.key(5))
    assert returns.shape == (2,) and np.all((0 <= returns) & (returns <= 10))  # 10 pulls of a 0/1 reward
    if config.network != "attention":
        assert set(state.learner_state) == {"initial_carry"}  # the carry at a trial's start is the learner's


def test_episode_returns_split_each_env_at_its_own_episode_ends():
    reward = jnp.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 5.0]])
    done = jnp.array([[False, True], [True, False], [False, True], [True, False]])
    transitions = mq.Transition(obs=reward, action=jnp.zeros((4, 2), jnp.int32), reward=reward, next_obs=reward,
                                terminated=done, truncated=jnp.zeros((4, 2), bool))
    # env 0: episodes (1, 2) then (3, 4); env 1: (1), (1, 1), then (5) unfinished
    np.testing.assert_allclose(mq.episode_returns(transitions, 2), [(3.0 + 1.0) / 2, (7.0 + 2.0) / 2])
