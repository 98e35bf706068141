"""PyTorch peers of workload W's meta-step as an expert would write them: every task at once.

`torch_reference` is the straightforward baseline (tasks in a Python loop). The peers here:

- `BatchedMetaLearner` (`torch_batched`): one numpy-vectorised CartPole of T·M envs with
  per-env physics arrays; no network call on the support rollouts (ε = 1: a random walk); query
  actions by one batched forward over the T tasks' adapted parameters; the meta-gradient with the
  tasks' weights stacked (`torch.baddbmm`) in chunks of C tasks, either by plain autograd
  (`mode="bmm"`) or by `torch.func.vmap` over the chunk's tasks (`mode="vmap"`). `torch_compile`
  passes `torch.compile(forward)` as the rollouts' `policy_net` (and as `Learning.net`, which
  torch 2.13 cannot differentiate twice).
- `ProcsMetaLearner` (`torch_procs`): the batched learner in one process per core, one thread
  each, T/P tasks per process, the meta-gradients averaged by `torch.distributed` (gloo).

Parameters are lists `[W₀, b₀, W₁, b₁, ...]` with flax's layout (`W [in, out]`); stacked over
tasks they gain a leading `[C]`. The losses are those of `torch_reference`: 0.5 · mean δ² per
task, the target network's values computed once per inner loop and cut on termination only.
"""

import dataclasses
import multiprocessing
import socket
from typing import Callable

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from metaq_jax.bench import torch_reference as ref

Layers = list[torch.Tensor]
"""`[W₀, b₀, W₁, b₁, ...]`, `W [in, out]` and `b [out]`, each with a leading `[C]` when stacked."""
MODES = ("bmm", "vmap")
"""How a chunk's meta-gradient is taken: stacked weights and plain autograd, or `torch.func.vmap`."""


@dataclasses.dataclass
class Batch:
    """Transitions of T tasks, `[T, N, ...]`: `obs`/`next_obs` float32 `[T, N, obs_dim]`, `action`
    int64 `[T, N]`, `reward` and `terminated` float32 `[T, N]`."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor

    def take(self, rows: slice) -> "Batch":
        """The tasks `rows` of every field.

        Args:
          rows: a slice of the leading `[T]` axis.

        Returns:
          The `Batch` of those tasks, `[len(rows), N, ...]` (views).
        """
        return Batch(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


def batch_from_arrays(obs, action, reward, next_obs, terminated) -> Batch:
    """`[T, n₁, n₂, ...]` arrays (JAX or numpy; e.g. `[T, L, M]`) as a `Batch` of `[T, n₁·n₂·…]` tensors.

    Args:
      obs (Array): `[T, ..., obs_dim]` observations.
      action (Array): `[T, ...]` actions.
      reward (Array): `[T, ...]` rewards.
      next_obs (Array): `[T, ..., obs_dim]` observations after the step.
      terminated (Array): `[T, ...]` termination flags.

    Returns:
      The `Batch`.
    """
    num_tasks, obs_dim = np.shape(action)[0], np.shape(obs)[-1]
    flat = lambda x, dtype, *tail: torch.tensor(np.asarray(x, dtype)).reshape(num_tasks, -1, *tail)
    return Batch(obs=flat(obs, np.float32, obs_dim), action=flat(action, np.int64), reward=flat(reward, np.float32),
                 next_obs=flat(next_obs, np.float32, obs_dim), terminated=flat(terminated, np.float32))


def batch_from_transitions(batch) -> Batch:
    """A `Transition` of `[T, L, M, ...]` arrays as a `Batch` of `[T, L·M, ...]` tensors.

    Args:
      batch (Transition): e.g. T tasks' rollouts from metaq_jax's collector.

    Returns:
      The `Batch`.
    """
    return batch_from_arrays(batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)


def layers_from_flax(variables: dict) -> Layers:
    """flax `QNetwork` variables -> `[W₀, b₀, ...]` tensors (copies), flax's `[in, out]` layout.

    Args:
      variables: `{"params": {"Dense_0": {"kernel", "bias"}, ...}}`.

    Returns:
      The layers' tensors in order.
    """
    dense = variables["params"]
    return [torch.tensor(np.asarray(dense[f"Dense_{i}"][name]))
            for i in range(len(dense)) for name in ("kernel", "bias")]


def layers_to_flax(layers: Layers) -> dict:
    """Inverse of `layers_from_flax`, as numpy arrays (e.g. to compare gradients).

    Args:
      layers: `[W₀, b₀, ...]` (detached here).

    Returns:
      `{"params": {"Dense_0": {"kernel", "bias"}, ...}}` of numpy arrays.
    """
    return {"params": {f"Dense_{i}": {"kernel": layers[2 * i].detach().numpy(), "bias": layers[2 * i + 1].detach().numpy()}
                       for i in range(len(layers) // 2)}}


def forward(layers: Layers, x: torch.Tensor) -> torch.Tensor:
    """The ReLU MLP with per-task weights: `x [C, N, in]` -> `q [C, N, A]` (stacked `layers`).

    Args:
      layers: stacked `[W₀ [C, in, h], b₀ [C, h], ...]`.
      x: the inputs.

    Returns:
      Q-values.
    """
    for i in range(0, len(layers), 2):
        x = torch.baddbmm(layers[i + 1].unsqueeze(1), x, layers[i])
        if i + 2 < len(layers):
            x = torch.relu(x)
    return x


def stack(layers: Layers, num_tasks: int) -> Layers:
    """θ shared by `num_tasks` tasks as stacked layers (a view: gradients sum over the tasks).

    Args:
      layers: unstacked `[W₀, b₀, ...]`.
      num_tasks: C.

    Returns:
      The layers expanded to a leading `[C]`.
    """
    return [p.expand(num_tasks, *p.shape) for p in layers]


def td_losses(net: Callable, layers: Layers, batch: Batch, q_next: torch.Tensor, gamma: float) -> torch.Tensor:
    """Each task's `0.5 · mean(δ²)`, δ = r + γ (1 − terminated) q_next − Q(s, a). `[C]`.

    Args:
      net: `forward` (or its compiled version).
      layers: stacked parameters.
      batch: `[C, N]` transitions.
      q_next: `[C, N]` target values at `batch.next_obs`.
      gamma: γ.

    Returns:
      The per-task losses, differentiable in `layers`.
    """
    q_sa = net(layers, batch.obs).gather(2, batch.action.unsqueeze(2)).squeeze(2)
    delta = batch.reward + gamma * (1.0 - batch.terminated) * q_next - q_sa
    return 0.5 * torch.mean(delta**2, dim=1)


def next_values(net: Callable, target: Layers, next_obs: torch.Tensor) -> torch.Tensor:
    """`max_a Q_target(s', a)`, `[C, N]`, without a graph.

    Args:
      net: `forward` (or its compiled version).
      target: stacked target-network parameters.
      next_obs: `[C, N, obs_dim]` next observations.

    Returns:
      `[C, N]` the target values.
    """
    with torch.no_grad():
        return net(target, next_obs).max(dim=2).values


def adapt(net: Callable, layers: Layers, support: Batch, q_next: torch.Tensor, *, steps: int, lr: float,
          gamma: float, first_order: bool) -> Layers:
    """K SGD steps of each task on its support loss, differentiable in `layers` (second order keeps
    each inner gradient's graph). Stacked `[C, ...]` in and out.

    Args:
      net: `forward` (or its compiled version).
      layers: stacked parameters θ.
      support: `[C, N]` support transitions.
      q_next: `[C, N]` target values at `support.next_obs`.
      steps: K.
      lr: α.
      gamma: γ.
      first_order: drop the inner gradients' graphs.

    Returns:
      The adapted stacked parameters.
    """
    for _ in range(steps):
        loss = td_losses(net, layers, support, q_next, gamma).sum()  # tasks independent: per-task gradients
        grads = torch.autograd.grad(loss, layers, create_graph=not first_order)
        layers = [p - lr * g for p, g in zip(layers, grads)]
    return layers


def adapt_vmapped(layers: Layers, support: Batch, q_next: torch.Tensor, *, steps: int, lr: float, gamma: float,
                  first_order: bool) -> Layers:
    """`adapt` written per task with `torch.func.grad` and vmapped over the chunk's tasks.

    Args:
      layers: stacked parameters θ.
      support: `[C, N]` support transitions.
      q_next: `[C, N]` target values at `support.next_obs`.
      steps: K.
      lr: α.
      gamma: γ.
      first_order: detach the inner gradients.

    Returns:
      The adapted stacked parameters.
    """

    def one_task(params, obs, action, reward, terminated, q_next):
        def loss(params):
            x = obs
            for i in range(0, len(params), 2):
                x = x @ params[i] + params[i + 1]
                if i + 2 < len(params):
                    x = torch.relu(x)
            delta = reward + gamma * (1.0 - terminated) * q_next - x.gather(1, action.unsqueeze(1)).squeeze(1)
            return 0.5 * torch.mean(delta**2)

        for _ in range(steps):
            grads = torch.func.grad(loss)(params)
            if first_order:
                grads = [g.detach() for g in grads]
            params = [p - lr * g for p, g in zip(params, grads)]
        return params

    return torch.func.vmap(one_task)(layers, support.obs, support.action, support.reward, support.terminated, q_next)


@dataclasses.dataclass(frozen=True)
class Learning:
    """How the peer learns: the algorithm, K, α, γ, the chunk of tasks sharing one stacked
    computation, `mode` (one of `MODES`) and the batched forward `net`."""

    algo: str
    steps: int
    lr: float
    gamma: float
    chunk: int
    mode: str = "bmm"
    net: Callable = forward


def adapt_chunks(learning: Learning, theta: Layers, target: Layers, support: Batch) -> list[Layers]:
    """Every chunk's adapted parameters, stacked `[C, ...]`, graphs kept for the meta-gradient.

    Args:
      learning: the algorithm (first order unless maml), sizes and mode.
      theta: θ (unstacked), requiring grad.
      target: the target network (unstacked).
      support: `[T, N]` support transitions.

    Returns:
      One stacked `Layers` per chunk of `learning.chunk` tasks (the last may be smaller).
    """
    chunks = []
    for start in range(0, support.obs.shape[0], learning.chunk):
        part = support.take(slice(start, start + learning.chunk))
        size = part.obs.shape[0]
        q_next = next_values(learning.net, stack(target, size), part.next_obs)
        inner = dict(steps=learning.steps, lr=learning.lr, gamma=learning.gamma, first_order=learning.algo != "maml")
        if learning.mode == "vmap":
            chunks.append(adapt_vmapped(stack(theta, size), part, q_next, **inner))
        else:
            chunks.append(adapt(learning.net, stack(theta, size), part, q_next, **inner))
    return chunks


def meta_direction(learning: Learning, theta: Layers, target: Layers, support: Batch,
                   query_fn: Callable[[Layers], Batch]) -> Layers:
    """The mean over T tasks of the meta-gradient (maml, fomaml) or Reptile's θ − φ.

    Args:
      learning: the algorithm, sizes and mode.
      theta: θ (unstacked), requiring grad.
      target: the target network (unstacked).
      support: `[T, N]` support transitions.
      query_fn: `query_fn(adapted [T, ...], detached) -> [T, N]` query transitions: collected with
        them in training, fixed data in the gate.

    Returns:
      The direction, one tensor per layer of `theta`.
    """
    num_tasks = support.obs.shape[0]
    chunks = adapt_chunks(learning, theta, target, support)
    query = query_fn([torch.cat([c[i].detach() for c in chunks]) for i in range(len(theta))])
    total = [torch.zeros_like(p) for p in theta]
    for n, adapted in enumerate(chunks):
        if learning.algo == "reptile":  # the query rollout only measures the adapted policy
            direction = [(p - a).detach().sum(0) for p, a in zip(theta, adapted)]
        else:
            part = query.take(slice(n * learning.chunk, (n + 1) * learning.chunk))
            size = part.obs.shape[0]
            q_next = next_values(learning.net, stack(target, size), part.next_obs)
            loss = td_losses(learning.net, adapted, part, q_next, learning.gamma).sum()
            direction = torch.autograd.grad(loss, theta)
        total = [t + d for t, d in zip(total, direction)]
    return [t / num_tasks for t in total]


class BatchedCartPole:
    """T tasks × M envs of CartPole as one gymnasium vector env with per-env physics; resets
    where done inside the step, as gymnax does (`torch_reference.reset_done`).

    Args:
      num_tasks: T.
      num_envs: M per task.
    """

    def __init__(self, num_tasks: int, num_envs: int):
        self.env = CartPoleVectorEnv(num_envs=num_tasks * num_envs)
        self.num_tasks, self.num_envs = num_tasks, num_envs

    def set_tasks(self, tasks: list[dict[str, float]]) -> None:
        """Each task's physics on its M envs (`torch_reference.sample_tasks`'s dicts).

        Args:
          tasks: T dicts of physics parameters, keyed by `torch_reference.PHYSICS_RANGES`' names.

        Returns:
          Nothing; sets the vector env's per-env physics.
        """
        per_env = {name: np.repeat([t[name] for t in tasks], self.num_envs) for name in ref.PHYSICS_RANGES}
        ref.set_physics(self.env, **per_env)

    def rollout(self, rng: np.random.Generator, length: int, policy: Callable[[np.ndarray], np.ndarray]) -> Batch:
        """`length` steps from a reset of every env, actions `policy(obs [T, M, 4]) -> [T, M]`. `[T, L·M]`.

        Args:
          rng: draws the reset's seed.
          length: L.
          policy: `obs [T, M, 4] -> actions [T, M]`.

        Returns:
          The `Batch` of `[T, L·M]` transitions.
        """
        obs, _ = self.env.reset(seed=int(rng.integers(2**31)))
        steps = []
        for _ in range(length):
            action = policy(obs.reshape(self.num_tasks, self.num_envs, -1)).reshape(-1)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            steps.append((obs, action, reward, next_obs, terminated))
            done = terminated | truncated
            obs = ref.reset_done(self.env, done) if done.any() else next_obs
        to_tasks = lambda x: np.stack(x).reshape(length, self.num_tasks, self.num_envs, *np.shape(x[0])[1:]).swapaxes(0, 1)
        return batch_from_arrays(*(to_tasks(x) for x in zip(*steps)))


def epsilon_greedy(net: Callable, layers: Layers, rng: np.random.Generator, epsilon: float
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """`obs [T, M, d] -> actions [T, M]`: one batched forward over the T tasks' stacked `layers`.

    Args:
      net: `forward` (or its compiled version).
      layers: stacked `[T, ...]` parameters, one set per task.
      rng: draws the exploration.
      epsilon: the probability of a uniform action.

    Returns:
      The policy, ε-greedy in the network's values.
    """

    def policy(obs):
        with torch.no_grad():
            greedy = net(layers, torch.from_numpy(obs)).argmax(dim=2).numpy()
        explore = rng.random(greedy.shape) < epsilon
        return np.where(explore, rng.integers(0, 2, greedy.shape), greedy)

    return policy


def random_walk(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """ε = 1: uniform actions, no network call.

    Args:
      rng: draws the actions.

    Returns:
      The policy `obs [T, M, d] -> actions [T, M]`, uniform over CartPole's two actions.
    """
    return lambda obs: rng.integers(0, 2, obs.shape[:2])


class BatchedMetaLearner:
    """Workload W's meta-training with every task at once: `step()` is one meta-step over T tasks.

    Args:
      variables: flax `QNetwork` variables to start from.
      learning: the algorithm, K, α, γ, chunk and mode.
      num_tasks: T (this process's share, in `ProcsMetaLearner`).
      num_envs: M.
      rollout_length: L.
      outer_lr: Adam's learning rate.
      epsilon: ε of the query rollouts.
      support_epsilon: ε of the support rollouts; 1 takes the random walk.
      target_update_period: meta-steps between copies of θ into the target network.
      seed: seeds the task draws, resets and exploration.
      reduce: applied to the mean direction before Adam (`ProcsMetaLearner`'s all-reduce).
      policy_net: the batched forward of the rollouts (`torch.compile`d in `torch_compile`).
      target: flax variables of the initial target network; None: a copy of `variables`.
    """

    def __init__(self, variables: dict, learning: Learning, *, num_tasks: int, num_envs: int, rollout_length: int,
                 outer_lr: float, epsilon: float, support_epsilon: float, target_update_period: int, seed: int = 0,
                 reduce: Callable[[Layers], Layers] = lambda direction: direction, policy_net: Callable = forward,
                 target: dict | None = None):
        self.theta = [p.requires_grad_(True) for p in layers_from_flax(variables)]
        self.target = [p.detach().clone() for p in self.theta] if target is None else layers_from_flax(target)
        self.optimizer = torch.optim.Adam(self.theta, lr=outer_lr)
        self.env = BatchedCartPole(num_tasks, num_envs)
        self.rng = np.random.default_rng(seed)
        self.learning, self.length, self.reduce, self.policy_net = learning, rollout_length, reduce, policy_net
        self.epsilon, self.support_epsilon = epsilon, support_epsilon
        self.target_update_period, self.steps_done = target_update_period, 0

    def collect_support(self) -> Batch:
        """The support rollouts of every task, with θ.

        Returns:
          The `Batch` of `[T, L·M]` transitions: a random walk at ε = 1, else ε-greedy in θ.
        """
        if self.support_epsilon == 1.0:
            return self.env.rollout(self.rng, self.length, random_walk(self.rng))
        theta = [p.detach().expand(self.env.num_tasks, *p.shape) for p in self.theta]
        return self.env.rollout(self.rng, self.length, epsilon_greedy(self.policy_net, theta, self.rng,
                                                                      self.support_epsilon))

    def step(self) -> None:
        """One meta-step: new tasks, support rollouts, adaptation, query rollouts, meta-gradient, Adam.

        Returns:
          Nothing; updates θ (and every `target_update_period` steps the target network) in place.
        """
        self.env.set_tasks(ref.sample_tasks(self.rng, self.env.num_tasks))
        support = self.collect_support()
        query_fn = lambda adapted: self.env.rollout(self.rng, self.length, epsilon_greedy(
            self.policy_net, adapted, self.rng, self.epsilon))
        direction = self.reduce(meta_direction(self.learning, self.theta, self.target, support, query_fn))
        for p, d in zip(self.theta, direction):
            p.grad = d
        self.optimizer.step()
        self.steps_done += 1
        if self.steps_done % self.target_update_period == 0:
            self.target = [p.detach().clone() for p in self.theta]


def free_port() -> int:
    """A TCP port free on this machine now, for gloo's rendezvous.

    Returns:
      The port number on 127.0.0.1.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STOP, STEP, LEARN = 0, 1, 2
"""Commands rank 0 broadcasts to the other processes of `ProcsMetaLearner`."""


def _all_reduce_mean(world: int) -> Callable[[Layers], Layers]:
    """Each process's mean direction over its tasks -> the mean over every process's tasks."""

    def reduce(direction):
        flat = torch.cat([d.reshape(-1) for d in direction])
        torch.distributed.all_reduce(flat)
        parts = torch.split(flat / world, [d.numel() for d in direction])
        return [part.reshape(d.shape) for part, d in zip(parts, direction)]

    return reduce


def _learn_share(learner: "BatchedMetaLearner", rank: int, world: int, data: tuple) -> Layers:
    """This rank's share of the tasks of fixed `(support, query)` data, its direction all-reduced."""
    support, query = data
    share = support.obs.shape[0] // world
    rows = slice(rank * share, (rank + 1) * share)
    direction = meta_direction(learner.learning, learner.theta, learner.target, support.take(rows),
                               lambda adapted: query.take(rows))
    return learner.reduce(direction)


def _join(rank: int, world: int, port: int, kwargs: dict) -> "BatchedMetaLearner":
    """Joins the process group with one thread; this rank's learner, its own seed, all-reducing."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    return BatchedMetaLearner(**dict(kwargs, seed=kwargs["seed"] + rank), reduce=_all_reduce_mean(world))


def _worker(rank: int, world: int, port: int, kwargs: dict, data: tuple | None) -> None:
    """A spawned process (ranks 1..P−1): obeys rank 0's broadcast commands until told to stop."""
    learner = _join(rank, world, port, kwargs)
    command = torch.zeros((), dtype=torch.int64)
    while True:
        torch.distributed.broadcast(command, src=0)
        if command.item() == STEP:
            learner.step()
        elif command.item() == LEARN:
            _learn_share(learner, rank, world, data)
        else:
            torch.distributed.destroy_process_group()
            return


class ProcsMetaLearner:
    """`BatchedMetaLearner` over P processes, one thread each, T/P tasks each; the meta-gradients
    averaged by a gloo all-reduce, so every process takes the same Adam step. This process is
    rank 0; `close()` stops the others.

    Args:
      processes: P; must divide `num_tasks`.
      num_tasks: T in all.
      seed: process r seeds its draws with `seed + r`.
      data: optional fixed `(support, query)` `Batch`es of T tasks, for `learn()` (the gate).
      **kwargs: `BatchedMetaLearner`'s arguments (`num_tasks` excepted).

    Raises:
      ValueError: P does not divide T.
    """

    def __init__(self, processes: int, *, num_tasks: int, seed: int = 0, data: tuple | None = None, **kwargs):
        if num_tasks % processes:
            raise ValueError(f"processes={processes} must divide num_tasks={num_tasks}")
        self.world, self.data, self.threads = processes, data, torch.get_num_threads()
        kwargs = dict(kwargs, num_tasks=num_tasks // processes, seed=seed)
        port, context = free_port(), multiprocessing.get_context("spawn")
        self.workers = [context.Process(target=_worker, args=(rank, processes, port, kwargs, data), daemon=True)
                        for rank in range(1, processes)]
        for worker in self.workers:
            worker.start()
        self.learner = _join(0, processes, port, kwargs)
        torch.set_num_threads(self.threads)  # this process takes one thread only while it steps

    def _command(self, command: int) -> None:
        torch.distributed.broadcast(torch.tensor(command, dtype=torch.int64), src=0)

    def step(self) -> None:
        """One meta-step of every process.

        Returns:
          Nothing; every process's θ takes the same Adam step.
        """
        torch.set_num_threads(1)
        self._command(STEP)
        self.learner.step()
        torch.set_num_threads(self.threads)

    def learn(self) -> Layers:
        """The mean direction over the T tasks of the fixed data, split over the processes.

        Returns:
          The direction, one tensor per layer of θ (unstacked).
        """
        self._command(LEARN)
        return _learn_share(self.learner, 0, self.world, self.data)

    def close(self) -> None:
        """Stops the other processes and leaves the process group.

        Returns:
          Nothing; the other processes have exited.
        """
        self._command(STOP)
        for worker in self.workers:
            worker.join()
        torch.distributed.destroy_process_group()
