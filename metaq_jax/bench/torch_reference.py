"""A PyTorch reference of workload W's meta-step, to time metaq_jax against (needs torch).

The same work as `metaq_jax`'s meta-step, written the way a PyTorch user would: tasks in a
Python loop, gymnasium's numpy-vectorised CartPole with per-task physics, `functional_call`
for the network, `torch.autograd.grad` (with `create_graph=True` for second order) for the
K inner SGD steps, Adam outer. The TD loss is 0.5 · mean δ² with the target network's
parameters passed explicitly, bootstrapped from the pre-reset final observation and cut on
termination only. Query data are collected with each task's adapted parameters.
"""

from typing import Callable

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from torch.func import functional_call

from metaq_jax.types import Transition

TorchParams = dict[str, torch.Tensor]
"""`functional_call` parameters of `make_network`'s Sequential, by name (`"0.weight"`, ...)."""
# The `cartpole` family's default ranges (metaq_jax.tasks.cartpole.make_cartpole).
PHYSICS_RANGES = {"gravity": (4.9, 14.7), "length": (0.25, 0.75), "masspole": (0.05, 0.15)}
"""`(low, high)` of each physical parameter, the `cartpole` family's defaults."""


def make_network(obs_dim: int, hidden_sizes: tuple[int, ...], num_actions: int) -> torch.nn.Sequential:
    """The ReLU MLP of `metaq_jax.networks.QNetwork`: `obs[N, obs_dim] -> q[N, num_actions]`.

    Args:
      obs_dim: the observation's size.
      hidden_sizes: the hidden layers' widths.
      num_actions: A.

    Returns:
      `Linear, ReLU, ..., Linear` as a Sequential (its own initial weights, replaced in use by
      `functional_call` parameters).
    """
    sizes = (obs_dim, *hidden_sizes)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], num_actions))


def params_from_flax(variables: dict) -> TorchParams:
    """flax `QNetwork` variables -> `functional_call` parameters of `make_network`.

    flax's `Dense_i` kernel is `[in, out]`; torch's `Linear` weight is `[out, in]`, and the
    Linear layers sit at even positions of the Sequential (ReLUs between).

    Args:
      variables: `{"params": {"Dense_0": {"kernel", "bias"}, ...}}`.

    Returns:
      New tensors (copies), `{"0.weight", "0.bias", "2.weight", ...}`.
    """
    dense = variables["params"]
    out = {}
    for i in range(len(dense)):
        layer = dense[f"Dense_{i}"]
        out[f"{2 * i}.weight"] = torch.tensor(np.asarray(layer["kernel"]).T.copy())
        out[f"{2 * i}.bias"] = torch.tensor(np.asarray(layer["bias"]))
    return out


def params_to_flax(params: TorchParams) -> dict:
    """Inverse of `params_from_flax`, as numpy arrays (e.g. to compare gradients).

    Args:
      params: `{"0.weight", "0.bias", "2.weight", ...}` tensors (detached here).

    Returns:
      `{"params": {"Dense_0": {"kernel", "bias"}, ...}}` of numpy arrays.
    """
    dense = {}
    for i in range(len(params) // 2):
        dense[f"Dense_{i}"] = {"kernel": params[f"{2 * i}.weight"].detach().numpy().T,
                               "bias": params[f"{2 * i}.bias"].detach().numpy()}
    return {"params": dense}


def transitions_to_torch(batch: Transition) -> Transition:
    """Any `Transition` of arrays, leading shape `[...]`, flattened to torch tensors `[N, ...]`.

    Args:
      batch: transitions of JAX or numpy arrays, e.g. `[L, M]`.

    Returns:
      The same transitions as tensors: `obs` and `next_obs` float32 `[N, obs_dim]`, `action`
      int64 `[N]`, `reward` float32 `[N]`, the flags bool `[N]`; N the product of the leading shape.
    """
    obs = torch.tensor(np.asarray(batch.obs, np.float32))
    n = int(np.prod(np.shape(batch.action)))
    return Transition(obs=obs.reshape(n, -1),
                      action=torch.tensor(np.asarray(batch.action, np.int64)).reshape(n),
                      reward=torch.tensor(np.asarray(batch.reward, np.float32)).reshape(n),
                      next_obs=torch.tensor(np.asarray(batch.next_obs, np.float32)).reshape(n, -1),
                      terminated=torch.tensor(np.asarray(batch.terminated, bool)).reshape(n),
                      truncated=torch.tensor(np.asarray(batch.truncated, bool)).reshape(n))


def next_values(net: torch.nn.Module, target: TorchParams, batch: Transition) -> torch.Tensor:
    """`max_a Q_target(s', a)`, `[N]`, without a graph: the target network is not differentiated.

    Args:
      net: `make_network`'s module.
      target: the target network's parameters.
      batch: `[N]` transitions.

    Returns:
      `[N]` values at `batch.next_obs`.
    """
    with torch.no_grad():
        return functional_call(net, target, (batch.next_obs,)).max(dim=1).values


def td_loss(net: torch.nn.Module, params: TorchParams, target: TorchParams, batch: Transition,
            gamma: float, q_next: torch.Tensor | None = None) -> torch.Tensor:
    """`0.5 * mean(δ²)`, δ = r + γ (1 − terminated) max_a Q_target(s', a) − Q(s, a). `[]`.

    Args:
      net: `make_network`'s module.
      params: the parameters whose Q(s, a) is fitted.
      target: the target network's parameters.
      batch: `[N]` transitions.
      gamma: γ.
      q_next: `next_values(net, target, batch)` when already computed (once per inner loop).

    Returns:
      The loss, a scalar tensor, differentiable in `params`.
    """
    q = functional_call(net, params, (batch.obs,))  # [N, A]
    q_sa = q.gather(1, batch.action[:, None])[:, 0]
    q_next = next_values(net, target, batch) if q_next is None else q_next
    discount = gamma * (1.0 - batch.terminated.to(q.dtype))
    delta = batch.reward + discount * q_next - q_sa
    return 0.5 * torch.mean(delta**2)


def adapt(net: torch.nn.Module, params: TorchParams, target: TorchParams, support: Transition, *,
          steps: int, lr: float, gamma: float, first_order: bool) -> TorchParams:
    """K SGD steps on the support TD loss; differentiable in `params` through every step.

    Second order keeps each inner gradient's graph (`create_graph=True`); first order takes
    the gradients as constants, so d adapted / d params is the identity.

    Args:
      net: `make_network`'s module.
      params: θ; its tensors must require grad.
      target: the target network's parameters.
      support: `[N]` support transitions.
      steps: K.
      lr: α.
      gamma: γ.
      first_order: take the inner gradients as constants.

    Returns:
      The adapted parameters φ, the same names as `params`.
    """
    q_next = next_values(net, target, support)  # the same at every step, as in metaq_jax
    for _ in range(steps):
        loss = td_loss(net, params, target, support, gamma, q_next)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def task_direction(net: torch.nn.Module, theta: TorchParams, target: TorchParams, support: Transition,
                   query_fn: Callable[[TorchParams], Transition], *, algo: str, steps: int, lr: float,
                   gamma: float) -> list[torch.Tensor]:
    """One task's meta-gradient (maml, fomaml) or Reptile direction θ − φ, per parameter.

    Args:
      net: `make_network`'s module.
      theta: θ; its tensors must require grad.
      target: the target network's parameters.
      support: `[N]` support transitions.
      query_fn: `query_fn(adapted) -> [N]` query transitions: collected with the adapted
        parameters in training, fixed data in the correctness gate.
      algo: `maml` (second order), `fomaml` or `reptile`.
      steps: K.
      lr: α.
      gamma: γ.

    Returns:
      One tensor per parameter of `theta`, in its order.
    """
    adapted = adapt(net, theta, target, support, steps=steps, lr=lr, gamma=gamma,
                    first_order=algo != "maml")
    query = query_fn({k: v.detach() for k, v in adapted.items()})
    if algo == "reptile":  # the query rollout only measures the adapted policy, as in metaq_jax
        return [(t - a).detach() for t, a in zip(theta.values(), adapted.values())]
    loss = td_loss(net, adapted, target, query, gamma)
    return list(torch.autograd.grad(loss, list(theta.values())))


def set_physics(env: CartPoleVectorEnv, gravity: float, length: float, masspole: float) -> None:
    """One task's physics on every sub-env, with the derived fields kept consistent.

    Args:
      env: gymnasium's vector CartPole; changed in place.
      gravity: g.
      length: the pole's half-length.
      masspole: the pole's mass.

    Returns:
      Nothing; sets `env`'s physics and the derived `total_mass` and `polemass_length`.
    """
    env.gravity, env.length, env.masspole = gravity, length, masspole
    env.total_mass = masspole + env.masscart
    env.polemass_length = masspole * length


def reset_done(env: CartPoleVectorEnv, done: np.ndarray) -> np.ndarray:
    """Reset the sub-envs where `done[M]` now, as gymnax does inside the step. `[M, 4]` obs.

    gymnasium's vector CartPole resets on the *next* step call (ignoring its action), which
    would waste a step per episode; resetting here keeps L × M real transitions, like gymnax.

    Args:
      env: gymnasium's vector CartPole; changed in place.
      done: `[M]` bool, the sub-envs to reset.

    Returns:
      `[M, 4]` float32 observations of every sub-env after the reset.
    """
    env.state[:, done] = env.np_random.uniform(low=env.low, high=env.high, size=(4, int(done.sum())))
    env.steps[done] = 0
    env.prev_done[done] = False
    return env.state.T.astype(np.float32)


def collect(env: CartPoleVectorEnv, net: torch.nn.Module, params: TorchParams, rng: np.random.Generator,
            *, length: int, epsilon: float) -> Transition:
    """ε-greedy rollout of `length` steps in `env`'s M sub-envs. `Transition` of `[L * M, ...]`.

    Args:
      env: gymnasium's vector CartPole, with the task's physics set.
      net: `make_network`'s module.
      params: the parameters of the greedy policy.
      rng: draws the reset seed, the exploration and the random actions.
      length: L.
      epsilon: ε.

    Returns:
      `[L * M]` transitions as tensors (`transitions_to_torch`).
    """
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    steps = []
    for _ in range(length):
        with torch.no_grad():
            greedy = functional_call(net, params, (torch.from_numpy(obs),)).argmax(dim=1).numpy()
        explore = rng.random(env.num_envs) < epsilon
        action = np.where(explore, rng.integers(0, 2, env.num_envs), greedy)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, action, reward, next_obs, terminated, truncated))
        done = terminated | truncated
        obs = reset_done(env, done) if done.any() else next_obs
    return transitions_to_torch(Transition(*map(np.stack, zip(*steps))))


def sample_tasks(rng: np.random.Generator, num_tasks: int) -> list[dict[str, float]]:
    """Per-task physics drawn uniformly from `PHYSICS_RANGES`.

    Args:
      rng: draws the physics.
      num_tasks: T.

    Returns:
      T dicts of `gravity`, `length` and `masspole`, for `set_physics`.
    """
    return [{name: float(rng.uniform(*bounds)) for name, bounds in PHYSICS_RANGES.items()}
            for _ in range(num_tasks)]


class TorchMetaLearner:
    """Workload W's meta-training in PyTorch: `step()` is one meta-step over `num_tasks` tasks.

    Args:
      variables: flax `QNetwork` variables to start from.
      algo: `maml`, `fomaml` or `reptile`.
      num_tasks: T.
      num_envs: M.
      rollout_length: L.
      inner_steps: K.
      inner_lr: α.
      gamma: γ.
      outer_lr: Adam's learning rate.
      epsilon: ε of the query rollouts.
      support_epsilon: ε of the support rollouts.
      target_update_period: meta-steps between copies of θ into the target network.
      seed: seeds the task draws, resets and exploration.
    """

    def __init__(self, variables: dict, *, algo: str, num_tasks: int, num_envs: int, rollout_length: int,
                 inner_steps: int, inner_lr: float, gamma: float, outer_lr: float, epsilon: float,
                 support_epsilon: float, target_update_period: int, seed: int = 0):
        self.theta = {k: v.clone().requires_grad_(True) for k, v in params_from_flax(variables).items()}
        self.target = {k: v.detach().clone() for k, v in self.theta.items()}
        kernels = [v for k, v in self.theta.items() if k.endswith("weight")]
        self.net = make_network(kernels[0].shape[1], tuple(k.shape[0] for k in kernels[:-1]), kernels[-1].shape[0])
        self.optimizer = torch.optim.Adam(self.theta.values(), lr=outer_lr)
        self.env = CartPoleVectorEnv(num_envs=num_envs)
        self.rng = np.random.default_rng(seed)
        self.algo, self.num_tasks, self.length = algo, num_tasks, rollout_length
        self.inner = dict(steps=inner_steps, lr=inner_lr, gamma=gamma)
        self.epsilon, self.support_epsilon = epsilon, support_epsilon
        self.target_update_period, self.steps_done = target_update_period, 0

    def step(self) -> None:
        """One meta-step: per task collect, adapt, collect again, differentiate; then Adam.

        Returns:
          Nothing; updates θ (and every `target_update_period` steps the target network) in place.
        """
        total = [torch.zeros_like(p) for p in self.theta.values()]
        for physics in sample_tasks(self.rng, self.num_tasks):
            set_physics(self.env, **physics)
            support = collect(self.env, self.net, self.theta, self.rng, length=self.length,
                              epsilon=self.support_epsilon)
            query_fn = lambda adapted: collect(self.env, self.net, adapted, self.rng, length=self.length,
                                               epsilon=self.epsilon)
            direction = task_direction(self.net, self.theta, self.target, support, query_fn, algo=self.algo,
                                       **self.inner)
            total = [t + d for t, d in zip(total, direction)]
        for p, t in zip(self.theta.values(), total):
            p.grad = t / self.num_tasks
        self.optimizer.step()
        self.steps_done += 1
        if self.steps_done % self.target_update_period == 0:  # as metaq_jax's update does
            self.target = {k: v.detach().clone() for k, v in self.theta.items()}
