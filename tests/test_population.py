"""A population trains every member in one compiled update, and member i equals the run alone
with member i's settings; on 2 and 4 simulated devices it equals one device."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import device_env, flat
import metaq_jax as mq
from metaq_jax import evaluate, population, training
from metaq_jax.errors import InputError

TINY = dict(family="nav2d", num_tasks=2, num_envs=2, rollout_length=10, hidden_sizes=(8,), inner_steps=2)
MEMORY = dict(family="bandit-k5-n10", algo="rl2", num_tasks=2, num_envs=2, hidden_sizes=(8,), cell_size=8,
              trial_episodes=1)
STEPS = 3
POOLED = {**MEMORY, "algo": "pearl", "cell_size": 64, "task_pool": 4, "batch_size": 8, "context_size": 4,
          "replay_size": 64}  # a pool that splits over 2 devices
# Each case: shared settings, seeds and a grid over fields that change no shape.
CASES = {
    "maml: 2 seeds x 2 inner lrs": (TINY, [0, 1], {"inner_lr": [0.1, 0.3]}),
    "maml, one member at a time": ({**TINY, "member_batch": 1}, [0, 1], {"inner_lr": [0.1, 0.3]}),
    "fomaml with meta-sgd: every other field": (
        {**TINY, "algo": "fomaml", "meta_sgd": True, "support_epsilon": 0.5}, [1],
        {"outer_lr": [3e-3], "max_grad_norm": [0.0, 1e-3], "meta_sgd_lr": [0.1], "inner_lr": [0.2], "gamma": [0.5], "epsilon": [0.3],
         "support_epsilon": [0.2], "target_update_period": [1]}),
    "rl2, 3 members at a time": ({**MEMORY, "member_batch": 3}, [2],
                                 {"gamma": [0.5, 0.9], "epsilon": [0.2], "outer_lr": [1e-3, 3e-3],
                                  "target_update_period": [2], "td_lambda": [0.8]}),
    "pearl": ({**MEMORY, "algo": "pearl", "cell_size": 64, "task_pool": 3, "batch_size": 8, "context_size": 4,
               "replay_size": 64}, [0, 1], {"kl_weight": [0.0, 1.0], "gamma": [0.5]}),
    "mql": ({**MEMORY, "algo": "mql", "cell_size": 64, "task_pool": 3, "batch_size": 8, "replay_size": 64,
             "history_length": 2, "adapt_steps": 1, "propensity_samples": 8}, [0],
            {"adapt_lr": [1e-3, 0.1], "beta_clip": [0.5], "epsilon": [0.3]}),
}


@pytest.fixture(scope="module", params=list(CASES))
def trained(request):
    """A population of seeds × a grid after STEPS updates, its metrics, and how often it compiled."""
    fields, seeds, grid = CASES[request.param]
    config = mq.MetaConfig(meta_steps=STEPS, **fields)
    family = mq.make_family(config.family)
    # 100 of a bandit grid cell's 1000 held-out tasks: a tenth of the trials to compare (mql's case 91 → 62 s)
    family = dataclasses.replace(family, num_test_tasks=min(family.num_test_tasks, 100))
    pop = population.make_population(config, family, population.grid_members(seeds, grid))
    update, value = jax.jit(pop.update), pop.init()
    history = []
    for _ in range(STEPS):
        value, metrics = update(value)
        history.append(metrics)
    return config, family, pop, value, history, update._cache_size()


def test_every_member_equals_its_run_alone(trained):
    config, family, pop, value, history, compiles = trained
    assert compiles == 1
    for i, member in enumerate(pop.members):
        state, alone = training.train(population.member_config(config, member), family)
        np.testing.assert_allclose(flat(jax.tree.map(lambda x: x[i], value.states.params)), flat(state.params),
                                   rtol=2e-5, atol=2e-6)
        for step, metrics in enumerate(alone):
            np.testing.assert_allclose([x[i] for x in history[step]], list(metrics), rtol=2e-4, atol=2e-6)


def test_each_members_meta_test_equals_its_run_tested_alone(trained):
    config, family, pop, value, _, _ = trained
    sizes = dict(num_episodes=2, num_steps=2, num_seeds=2)
    together = population.member_returns(config, family, value, [m["seed"] for m in pop.members],
                                         random_init=True, **sizes)
    for i, member in enumerate(pop.members):
        alone = population.member_config(config, member)
        state = jax.tree.map(lambda x: x[i], value.states)
        expected = evaluate.paired_returns(mq.make_meta_learner(alone, family), state, family.test_tasks(),
                                           jax.random.key(member["seed"] + 1), **sizes)
        assert set(together) == set(expected)
        for protocol, rows in expected.items():
            for name, returns in rows.items():
                if config.algo == "mql":  # its adaptation (Newton solves, Adam) rounds differently when
                    # vmapped, which flips a rare greedy action of a 0/1-reward bandit (random init's
                    # nearly equal Q-values most: 1.8% of its trials here)
                    close = np.isclose(together[protocol][name][i], returns, rtol=1e-4, atol=1e-4)
                    assert close.mean() >= 0.97, (protocol, name, close.mean())
                    np.testing.assert_allclose(np.mean(together[protocol][name][i]), np.mean(returns), atol=0.05)
                else:
                    np.testing.assert_allclose(together[protocol][name][i], returns, rtol=1e-4, atol=1e-4)
    if config.algo == "rl2":  # a budget of one byte: the test runs one task at a time, with the same returns
        fitted = population.member_returns(config, family, value, [m["seed"] for m in pop.members],
                                           random_init=True, budget=1, **sizes)
        for protocol, rows in together.items():
            for name, returns in rows.items():
                np.testing.assert_allclose(fitted[protocol][name], returns, rtol=1e-4, atol=1e-4)


def test_train_population_trains_each_member_as_its_run_alone():
    config = mq.MetaConfig(meta_steps=STEPS, **TINY)
    family = mq.make_family(config.family)
    value, history = population.train_population(
        population.make_population(config, family, population.grid_members([3, 4], {})), STEPS)
    assert len(history) == STEPS and history[-1].post_return.shape == (2,)
    for i, seed in enumerate((3, 4)):
        state, _ = training.train(config.replace(seed=seed), family)
        np.testing.assert_allclose(flat(jax.tree.map(lambda x: x[i], value.states.params)), flat(state.params),
                                   rtol=2e-5, atol=2e-6)


# Run in a subprocess with XLA's default CPU emitters, as users compile: the older emitters the
# suite compiles with (conftest) round a population of one differently from its run in the last bit.
ONE_SCRIPT = f"""
import sys, jax, numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from helpers import flat
import metaq_jax as mq
from metaq_jax import evaluate, population, training

config = mq.MetaConfig(meta_steps={STEPS}, **{TINY!r})
family = mq.make_family(config.family)
value, _ = population.train_population(population.make_population(config, family, [{{"seed": 5}}]), {STEPS})
state, _ = training.train(config.replace(seed=5), family)
np.testing.assert_array_equal(flat(value.states), flat(state))
sizes = dict(num_episodes=2, num_steps=2)
together = population.member_returns(config, family, value, [5], random_init=True, **sizes)
alone = evaluate.paired_returns(mq.make_meta_learner(config, family), state, family.test_tasks(),
                                jax.random.key(6), **sizes)
for protocol, rows in alone.items():
    for name, returns in rows.items():
        np.testing.assert_array_equal(together[protocol][name][0], returns)
print("equal", sorted(alone))
"""


def test_a_population_of_one_is_its_run_alone_bit_for_bit():
    env = device_env(1)
    env["XLA_FLAGS"] = " ".join(f for f in env["XLA_FLAGS"].split() if not f.startswith("--xla_cpu_use_fusion_emitters"))
    done = subprocess.run([sys.executable, "-c", ONE_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "equal ['inner_steps', 'trial']"


META_TEST_ONLY = {"adapt_lr", "beta_clip"}  # mql's adaptation: they do not change training


def test_members_differ_by_their_settings(trained):
    _, _, pop, value, _, _ = trained
    params = [flat(jax.tree.map(lambda x: x[i], value.states.params)) for i in range(len(pop.members))]

    def trained_alike(a, b):
        return all(a[k] == b[k] for k in a if k not in META_TEST_ONLY)

    assert all(trained_alike(pop.members[0], m) == np.allclose(params[0], p) for m, p in zip(pop.members[1:], params[1:]))


@pytest.mark.parametrize("member_batch,mapped", [(0, "vmap"), (1, "scan"), (3, "vmap"), (8, "vmap")])
def test_members_are_vmapped_as_member_batch_says(member_batch, mapped):
    """Automatic: all members vmapped; one at a time, a scan over the 3 members in one program
    (the "rl2" case above trains 4 members 3 at a time)."""
    config = mq.MetaConfig(**TINY, member_batch=member_batch)
    pop = population.make_population(config, mq.make_family("nav2d"), population.grid_members([0, 1, 2], {}))
    assert population.member_batch(config, 3) == {0: 3, 1: 1, 3: 3, 8: 3}[member_batch]
    eqns = jax.make_jaxpr(pop.update)(pop.init()).eqns
    scanned = len(eqns) == 1 and eqns[0].primitive.name == "scan" and eqns[0].params["length"] == 3
    assert scanned == (mapped == "scan")


def test_grid_members_vary_seeds_slowest():
    members = population.grid_members([3, 4], {"inner_lr": [0.1, 0.2], "gamma": [0.0]})
    assert members == [{"seed": 3, "inner_lr": 0.1, "gamma": 0.0}, {"seed": 3, "inner_lr": 0.2, "gamma": 0.0},
                       {"seed": 4, "inner_lr": 0.1, "gamma": 0.0}, {"seed": 4, "inner_lr": 0.2, "gamma": 0.0}]


@pytest.mark.parametrize("fields, member, message", [
    (TINY, {"seed": 0, "num_envs": 4}, "sweep field 'num_envs': only fields that change no array shape"),
    (TINY, {"seed": 0, "gamma": 2.0}, "MetaConfig.gamma = 2.0: must be a finite number >= 0 and <= 1"),
    (MEMORY, {"seed": 0, "inner_lr": 0.1}, "MetaConfig.inner_lr = 0.1: not used by algo rl2"),
])
def test_a_member_the_config_refuses_is_refused_naming_the_field(fields, member, message):
    config = mq.MetaConfig(**fields)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        population.make_population(config, mq.make_family(config.family), [member])


def test_members_giving_different_fields_are_refused():
    config = mq.MetaConfig(**TINY)
    with pytest.raises(InputError, match="every member must give the fields"):
        population.make_population(config, mq.make_family("nav2d"), [{"seed": 0, "gamma": 0.1}, {"seed": 1}])


SCRIPT = f"""
import json, sys, jax, numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from helpers import flat
import metaq_jax as mq
from metaq_jax import distributed, population

out = {{}}
for algo, fields, grid in (("maml", {TINY!r}, {{"inner_lr": [0.1, 0.3]}}),
                           ("maml one member at a time", {{**{TINY!r}, "member_batch": 1}}, {{"inner_lr": [0.1, 0.3]}}),
                           ("pearl", {POOLED!r}, {{"kl_weight": [0.0, 1.0]}})):
    config = mq.MetaConfig(meta_steps={STEPS}, **fields)
    pop = population.make_population(config, mq.make_family(config.family), population.grid_members([0, 1], grid))
    for name, mesh in (("ref", None), ("task2", distributed.make_mesh(2)), ("member2xtask2", distributed.make_mesh(4, members=2))):
        value = pop.init()
        update = jax.jit(pop.update) if mesh is None else None
        if mesh is not None:
            update, value = distributed.shard_population(pop.update, value, mesh, config.num_tasks, pop.pooled)
        for _ in range({STEPS}):
            value, metrics = update(value)
        pool = jax.tree.leaves(value.states.learner_state)
        out[algo + " " + name] = {{"params": flat(value.states.params).tolist(), "loss": flat(metrics.meta_loss).tolist(),
                                   "shards": len(value.states.step.sharding.device_set),
                                   # [members, pool rows] of the first pool leaf that one device holds
                                   "pool": list(pool[0].addressable_shards[0].data.shape[:2]) if pool else None}}
print(json.dumps(out))
"""


def test_a_population_sharded_over_members_and_tasks_equals_one_device():
    env = device_env(4, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for algo in ("maml", "maml one member at a time", "pearl"):
        for name in ("task2", "member2xtask2"):
            got, ref = out[f"{algo} {name}"], out[f"{algo} ref"]
            np.testing.assert_allclose(got["params"], ref["params"], rtol=2e-5, atol=2e-6)
            np.testing.assert_allclose(got["loss"], ref["loss"], rtol=2e-4, atol=2e-6)
        assert (out[f"{algo} task2"]["shards"], out[f"{algo} member2xtask2"]["shards"]) == (2, 4)
    # pearl's 4 members, each with a pool of 4 tasks: the pools split along task, the members along member
    assert [out[f"pearl {name}"]["pool"] for name in ("ref", "task2", "member2xtask2")] == [[4, 4], [4, 2], [2, 2]]
