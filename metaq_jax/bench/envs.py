"""Environment throughput alone: our collection vs gymnax's raw rollouts vs gymnasium's numpy CartPole.

Our collector is timed as a uniform random walk (the support rollouts of workload W, and what
the other contenders do) and ε-greedy on the Q-network (the query rollouts), which adds a
forward pass of the network per step.
"""

from typing import TYPE_CHECKING, Callable

import jax
import numpy as np

from metaq_jax.algos import make_problem
from metaq_jax.bench.measure import interleaved, spread
from metaq_jax.config import MetaConfig
from metaq_jax.types import EnvParams

if TYPE_CHECKING:  # importing gymnax builds arrays, which starts JAX's backend
    from gymnax.environments import environment


def gymnax_rollout(env: "environment.Environment", env_params: EnvParams, num_envs: int, length: int, *,
                   auto_reset: bool) -> Callable[[jax.Array], jax.Array]:
    """A jit-able `key -> final obs [M, 4]`: `length` random-action steps of M vmapped envs.

    `auto_reset=False` calls the bare `step_env` (episodes run past their end, which costs
    nothing here): what the physics alone costs, the floor for any collector.

    Args:
      env: a gymnax environment with 2 actions (CartPole).
      env_params: its parameters, shared by the M envs.
      num_envs: M.
      length: steps per rollout.
      auto_reset: step with gymnax's `step` (auto-reset) rather than the bare `step_env`.

    Returns:
      `run(key) -> final obs [M, 4]`, not yet jitted.
    """
    step_fn = env.step if auto_reset else env.step_env

    def run(key):
        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), env_params)

        def step(carry, k):
            k_act, k_env = jax.random.split(k)
            actions = jax.random.randint(k_act, (num_envs,), 0, 2)
            obs, state, *_ = jax.vmap(step_fn, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_envs), carry[1], actions, env_params)
            return (obs, state), None

        (obs, _), _ = jax.lax.scan(step, (obs, state), jax.random.split(k_run, length))
        return obs

    return run


def gymnasium_rollout(num_envs: int, length: int, *,
                      python_loop: bool = False) -> Callable[[], np.ndarray]:
    """`() -> final obs`: `length` random-action steps of `num_envs` CartPoles in gymnasium.

    Its numpy `CartPoleVectorEnv`, or with `python_loop` `CartPole-v1` envs stepped one by one
    in Python (`SyncVectorEnv`), the way most PyTorch code runs them. Needs gymnasium.

    Args:
      num_envs: M.
      length: steps per rollout.
      python_loop: step M separate envs in a Python loop rather than the numpy vector env.

    Returns:
      `run() -> final obs [M, 4]`; each call resets the envs (seed 0) and steps them.
    """
    import gymnasium
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    if python_loop:
        env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1") for _ in range(num_envs)])
    else:
        env = CartPoleVectorEnv(num_envs=num_envs)
    rng = np.random.default_rng(0)

    def run():
        env.reset(seed=0)
        for _ in range(length):
            obs, *_ = env.step(rng.integers(0, 2, num_envs))
        return obs

    return run


PYTHON_LOOP_MAX_ENVS = 1024  # beyond this one round of the Python loop takes longer than the rest of a row
"""The most envs at which gymnasium's Python loop is timed."""


def env_throughput(num_envs: int, length: int, rounds: int) -> dict[str, float]:
    """Env steps per second of each collector at `num_envs` envs, `length` steps, median of `rounds`.

    Args:
      num_envs: M.
      length: steps per rollout.
      rounds: timed rounds of each collector, interleaved, after a warm-up round.

    Returns:
      Env steps per second by collector: `metaq_random_walk`, `metaq_epsilon_greedy`,
      `gymnax_auto_reset`, `gymnax_bare_step_env`, `gymnasium_numpy` and
      `gymnasium_python_loop` (None above `PYTHON_LOOP_MAX_ENVS` envs).
    """
    problem = make_problem(MetaConfig(family="cartpole", num_envs=num_envs, rollout_length=length,
                                      hidden_sizes=(64, 64)))
    env, env_params = problem.family.env, problem.family.default_params
    params = problem.init_params(jax.random.key(0))
    key = jax.random.key(1)
    random_walk = jax.jit(lambda k: problem.collect(params, env_params, k, 1.0).obs)  # like the others
    epsilon_greedy = jax.jit(lambda k: problem.collect(params, env_params, k, 0.1).obs)  # + the Q-network
    auto = jax.jit(gymnax_rollout(env, env_params, num_envs, length, auto_reset=True))
    bare = jax.jit(gymnax_rollout(env, env_params, num_envs, length, auto_reset=False))
    fns = {"metaq_random_walk": lambda: random_walk(key), "metaq_epsilon_greedy": lambda: epsilon_greedy(key),
           "gymnax_auto_reset": lambda: auto(key),
           "gymnax_bare_step_env": lambda: bare(key), "gymnasium_numpy": gymnasium_rollout(num_envs, length)}
    if num_envs <= PYTHON_LOOP_MAX_ENVS:
        fns["gymnasium_python_loop"] = gymnasium_rollout(num_envs, length, python_loop=True)
    times = interleaved(fns, rounds)
    rates = {name: num_envs * length / spread(t)["median"] for name, t in times.items()}
    return {**rates, "gymnasium_python_loop": rates.get("gymnasium_python_loop")}
