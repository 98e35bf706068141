"""`MetaConfig`: every setting of a meta-training run, validated when it is built."""

import dataclasses
import math
from typing import Any

from metaq_jax.errors import InputError
from metaq_jax.tasks.registry import list_families  # names only: builds and imports no family

KINDS = {"maml": "gradient", "fomaml": "gradient", "reptile": "gradient", "pretrain": "gradient", "rl2": "memory",
         "pearl": "latent", "mql": "latent"}
"""The kind of meta-learner each algo is: gradient (adapts by inner SGD steps), memory (by its
state) or latent (by inferring a task variable from context)."""
ALGOS = tuple(KINDS)
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
ACTIVATIONS = ("relu", "tanh", "gelu", "silu")
NETWORKS = {"gradient": ("mlp", "tabular"), "memory": ("mlp", "attention"), "latent": ("mlp",)}
"""The networks each kind may use; a memory learner's "mlp" is an MLP torso before its recurrent `cell`."""
CELLS = ("gru", "lstm")
ADAPTS = ("all", "head")
"""What a gradient learner's inner loop adapts: every network variable, or the output layer (ANIL)."""
KIND_FIELDS = {
    "gradient": ("inner_steps", "inner_lr", "rollout_length", "support_epsilon", "remat", "meta_sgd",
                 "meta_sgd_lr", "step_losses", "adapt_every", "adapt"),
    "memory": ("cell", "cell_size", "td_lambda", "attention_filters", "attention_size"),
    "latent": ("latent_size", "kl_weight", "context_size", "batch_size", "replay_size", "task_pool",
               "gradient_steps", "history_length", "adapt_steps", "adapt_lr", "beta_clip", "propensity_samples",
               "support_epsilon"),
}
"""Fields only some kinds read (`support_epsilon`: the gradient and latent kinds' support batches):
any other kind must leave them at their defaults."""
MEMORY_NETWORK_FIELDS = {"mlp": ("cell", "cell_size"), "attention": ("attention_filters", "attention_size")}
"""Memory-kind fields that one network alone reads: the recurrent cell's, and the sizes of SNAIL's blocks."""
ALGO_FIELDS = {
    "pearl": ("kl_weight", "context_size"),
    "mql": ("history_length", "adapt_steps", "adapt_lr", "beta_clip", "propensity_samples"),
}
"""Fields of a kind that only one of its algos reads: the kind's other algos must leave them at their defaults."""
TUNED = {
    ("nav2d", "maml"): dict(meta_sgd=True, step_losses=True, inner_lr=0.1, meta_sgd_lr=0.03, rollout_length=100,
                            num_envs=4, meta_steps=1800, outer_schedule="cosine", max_grad_norm=0.1),
}
"""Settings tuned for a (family, algo), over `MetaConfig`'s defaults: `metaq train | sweep | protocol`
start from them (under `--config` and the flags; `--no-tuned` starts from the defaults alone). The
one for (nav2d, maml) is the default job (README, "The default job"): Meta-SGD with the multi-step
loss on whole 100-step rollouts, where plain MAML at the defaults barely adapts in the same time; the
outer lr decays on a cosine and the meta-gradient's norm is clipped, as results/nav2d's runs do, where a
constant lr let 3 of 5 seeds collapse (the README)."""
# How a run is spread over hardware: results do not depend on these, so a run may resume with others.
SCALE_FIELDS = ("devices", "task_batch", "member_batch", "test_batch")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """Settings of meta-training; each field has a working default (the `nav2d` job).

    Invalid values raise `ValueError` naming the field, the value and what is allowed.
    """

    family: str = "nav2d"  # a registered task family (see `metaq_jax.list_families()`)
    algo: str = "maml"  # maml (second order) | fomaml (first order) | reptile | pretrain (baseline) | rl2 (memory) | pearl, mql (latent)
    num_tasks: int = 16  # T: tasks per meta-batch
    inner_steps: int = 3  # K: SGD steps of adaptation per task
    inner_lr: float = 0.2  # α: inner SGD step size
    num_envs: int = 16  # M: parallel environments per task
    rollout_length: int = 50  # L: environment steps per rollout (support and query alike)
    meta_steps: int = 900  # outer updates of a run
    outer_optimizer: str = "adam"  # adam | sgd
    outer_lr: float = 5e-3
    outer_schedule: str = "constant"  # constant | cosine | linear: the outer lr's decay to 0 over the run's meta-steps
    max_grad_norm: float = 0.0  # clip the meta-gradient's global norm (Meta-SGD's rates apart); 0 disables clipping
    epsilon: float = 0.1  # ε of the ε-greedy query rollouts
    support_epsilon: float = 1.0  # ε of the support rollouts (1.0: a uniform random walk)
    eval_epsilon: float = 0.0  # ε of the rollouts that measure returns at meta-test time
    gamma: float = 0.0  # discount γ of the TD target (0 suits nav2d: README)
    target_update_period: int = 10  # meta-steps between copies of θ into the target network
    network: str = "mlp"  # mlp | tabular (Q-table; gradient kind) | attention (SNAIL; rl2); rl2's mlp feeds its cell
    hidden_sizes: tuple[int, ...] = (64, 64)  # widths of the Q-network's hidden layers
    activation: str = "relu"  # relu | tanh | gelu | silu
    remat: bool = False  # recompute inner steps in the backward pass (less memory, same result)
    meta_sgd: bool = False  # learn a per-parameter inner lr (Meta-SGD), starting at inner_lr
    meta_sgd_lr: float = 0.01  # Adam step size of the learned log inner lrs (on the outer schedule)
    step_losses: bool = False  # meta-loss: mean of the query losses after each inner step 1..K (MAML++)
    trial_episodes: int = 2  # E: episodes of a trial on one task (meta-test of every kind; rl2 trains on trials)
    adapt_every: int = 0  # gradient kind, in a trial: env steps between adaptations; 0: one episode length
    adapt: str = "all"  # gradient kind: what the inner loop adapts: all | head (ANIL: the Q-network's output layer)
    cell: str = "gru"  # rl2's recurrent cell: gru | lstm
    cell_size: int = 64  # rl2's recurrent cell width
    td_lambda: float = 0.0  # rl2's λ of its Q(λ) targets over a trial (0: one-step; 1: the trial's return)
    attention_filters: int = 16  # rl2's attention network: output features of each causal convolution
    attention_size: int = 32  # rl2's attention network: width of each attention block's keys and values
    latent_size: int = 5  # latent kind: pearl's z size (PEARL's default); mql's context size (its GRU's width)
    kl_weight: float = 0.1  # pearl's weight of KL(q(z | c) ‖ N(0, I)) in the encoder's loss (PEARL's default)
    context_size: int = 64  # pearl: context transitions the posterior is inferred from in training
    batch_size: int = 256  # latent kind: transitions per task of each TD step, from the task's replay
    replay_size: int = 10_000  # latent kind: replay capacity of each training task, in transitions
    task_pool: int = 40  # latent kind: training tasks drawn once per run, each with its replay
    gradient_steps: int = 4  # latent kind: TD steps per meta-step, after its collection
    history_length: int = 10  # mql: H, the steps of history its context GRU reads
    adapt_steps: int = 10  # mql: Adam steps of adaptation on the new task's data, then as many on weighted replay
    adapt_lr: float = 1e-3  # mql: Adam's step size in adaptation
    beta_clip: float = 1.0  # mql: the largest propensity weight β of a replayed sample
    propensity_samples: int = 256  # mql: meta-training replay samples the propensity model and adaptation use
    seed: int = 0
    devices: int = 0  # devices of each process on the mesh's task axis; 0: all local devices
    task_batch: int = 0  # tasks vmapped at once on a device, the rest in sequence; 0: 1 on CPU, all else
    member_batch: int = 0  # a population's members vmapped at once, the rest in sequence; 0: all (1: faster on a CPU for large steps)
    test_batch: int = 0  # held-out tasks tested at once (each with all its trials), the rest in sequence; 0: all

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):  # JSON round trip gives a list
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        _check_choice("algo", self.algo, ALGOS)
        self._check_kind_fields()
        _check_choice("outer_optimizer", self.outer_optimizer, OPTIMIZERS)
        _check_choice("outer_schedule", self.outer_schedule, SCHEDULES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("network", self.network, NETWORKS[self.kind])
        _check_choice("cell", self.cell, CELLS)
        _check_choice("adapt", self.adapt, ADAPTS)
        _check_family(self.family)
        for name in ("num_tasks", "num_envs", "rollout_length", "meta_steps", "target_update_period",
                     "trial_episodes", "cell_size", "attention_filters", "attention_size", "latent_size",
                     "context_size", "batch_size", "replay_size", "task_pool", "gradient_steps", "history_length",
                     "propensity_samples"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("adapt_every", self.adapt_every, minimum=0)
        _check_int("inner_steps", self.inner_steps, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_int("devices", self.devices, minimum=0)
        _check_int("task_batch", self.task_batch, minimum=0)
        _check_int("member_batch", self.member_batch, minimum=0)
        _check_int("test_batch", self.test_batch, minimum=0)
        _check_float("inner_lr", self.inner_lr, low=0.0, low_open=False)
        _check_float("outer_lr", self.outer_lr, low=0.0, low_open=True)
        _check_float("max_grad_norm", self.max_grad_norm, low=0.0, low_open=False)
        _check_float("kl_weight", self.kl_weight, low=0.0, low_open=False)
        _check_int("adapt_steps", self.adapt_steps, minimum=0)
        _check_float("adapt_lr", self.adapt_lr, low=0.0, low_open=True)
        _check_float("beta_clip", self.beta_clip, low=0.0, low_open=True)
        for name in ("epsilon", "support_epsilon", "eval_epsilon", "gamma", "td_lambda"):
            _check_float(name, getattr(self, name), low=0.0, low_open=False, high=1.0)
        if not isinstance(self.hidden_sizes, tuple) or not all(
            _is_int(h) and h >= 1 for h in self.hidden_sizes
        ):
            raise InputError(
                f"MetaConfig.hidden_sizes = {self.hidden_sizes!r}: must be a tuple of positive integers",
                field="hidden_sizes")
        for name in ("remat", "meta_sgd", "step_losses"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"MetaConfig.{name} = {getattr(self, name)!r}: must be true or false", field=name)
        _check_float("meta_sgd_lr", self.meta_sgd_lr, low=0.0, low_open=True)
        if self.meta_sgd and (self.algo not in ("maml", "fomaml") or self.inner_lr == 0):
            raise InputError(f"MetaConfig.meta_sgd = True: needs algo maml or fomaml and inner_lr > 0 "
                             f"(got algo {self.algo}, inner_lr {self.inner_lr})", field="meta_sgd")

        if self.adapt == "head" and (self.algo == "reptile" or self.network != "mlp"):
            raise InputError(f"MetaConfig.adapt = 'head': needs network mlp and algo maml, fomaml or pretrain "
                             f"(got network {self.network}, algo {self.algo}: reptile would leave the torso at "
                             "its initialisation)", field="adapt")
        if self.kind == "latent" and self.task_pool < self.num_tasks:
            raise InputError(f"MetaConfig.task_pool = {self.task_pool}: must be >= num_tasks ({self.num_tasks}), "
                             "the pool's tasks each meta-step draws without replacement", field="task_pool")
        if self.step_losses and (self.algo not in ("maml", "fomaml") or self.inner_steps == 0):
            raise InputError(f"MetaConfig.step_losses = True: needs algo maml or fomaml and inner_steps >= 1 "
                             f"(got algo {self.algo}, inner_steps {self.inner_steps})", field="step_losses")

    @property
    def kind(self) -> str:
        """The kind of meta-learner `algo` is.

        Returns:
          `"gradient"`, `"memory"` or `"latent"` (`KINDS`).
        """
        return KINDS[self.algo]

    def _check_kind_fields(self) -> None:
        """Refuse a field of another kind or algo set away from its default (checked before its value)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in sorted(unread_fields(self.algo), key=list(defaults).index):
            if getattr(self, name) != defaults[name]:
                kinds = [k for k, names in KIND_FIELDS.items() if name in names]
                owner = next((a for a, names in ALGO_FIELDS.items() if name in names), None)
                reader = f"algo {owner}" if owner and self.kind in kinds else f"{' and '.join(kinds)} learners"
                raise InputError(f"MetaConfig.{name} = {getattr(self, name)!r}: not used by algo {self.algo} "
                                 f"(a {self.kind} learner; {name} is for {reader}); leave it at "
                                 f"{defaults[name]!r}", field=name)
        for network, names in MEMORY_NETWORK_FIELDS.items():  # other kinds were refused these fields above
            for name in names:
                if self.network != network and getattr(self, name) != defaults[name]:
                    raise InputError(f"MetaConfig.{name} = {getattr(self, name)!r}: not used with network "
                                     f"{self.network!r} ({name} is for network {network!r}); leave it at "
                                     f"{defaults[name]!r}", field=name)

    def for_algo(self, algo: str) -> "MetaConfig":
        """This config for another algo: the fields the new algo's kind does not use back at defaults.

        Args:
          algo: one of `ALGOS`.

        Returns:
          The validated config (a memory learner's attention network becomes an MLP for a
          gradient learner).
        """
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changes = {name: defaults[name] for name in unread_fields(algo)}
        if self.network not in NETWORKS.get(KINDS.get(algo), ()):
            changes["network"] = defaults["network"]
        return self.replace(algo=algo, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field, ready for JSON.

        Returns:
          `{field: value}`, tuples as lists.
        """
        return {**dataclasses.asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "MetaConfig":
        """The inverse of `to_dict`.

        Args:
          values: `{field: value}` for any subset of the fields; the rest keep their defaults.

        Returns:
          The validated config.

        Raises:
          InputError: a key is not a field, or a value is not allowed.
        """
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"MetaConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes: Any) -> "MetaConfig":
        """This config with some fields changed, validated again.

        Args:
          **changes: `field=value` pairs.

        Returns:
          The new config.

        Raises:
          InputError: a changed value is not allowed.
        """
        return dataclasses.replace(self, **changes)


def without_unread_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Stored config values without the fields their algo's kind does not read.

    A run stores every field; those of another kind hold the defaults of the version that wrote
    it, which a later version's defaults may not match.

    Args:
      values: `{field: value}` as a config.json holds them.

    Returns:
      The same values less the other kinds' fields (all of them when `algo` is unknown: the
      config's own check then names it).
    """
    unread = unread_fields(values.get("algo", MetaConfig.algo))
    return {name: value for name, value in values.items() if name not in unread}


def unread_fields(algo: str | None) -> set[str]:
    """The fields that `algo` does not read: other kinds' `KIND_FIELDS` that its own kind does not
    share, and its own kind's fields that only another algo reads (`ALGO_FIELDS`).

    Args:
      algo: a key of `KINDS`; None or an unknown name: every kind's fields are unread.

    Returns:
      The field names.
    """
    kind = KINDS.get(algo)
    other_kinds = {name for k, names in KIND_FIELDS.items() if k != kind for name in names} - set(KIND_FIELDS.get(kind, ()))
    own = set(ALGO_FIELDS.get(algo, ()))
    other_algos = {name for a, names in ALGO_FIELDS.items() if a != algo and KINDS[a] == kind for name in names}
    return other_kinds | (other_algos - own)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value, *, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"MetaConfig.{name} = {value!r}: must be {what}", field=name)


def _check_float(name, value, *, low, low_open, high=math.inf) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}"
        allowed = f"a finite number {bound}" + ("" if high == math.inf else f" and <= {high:g}")
        raise InputError(f"MetaConfig.{name} = {value!r}: must be {allowed}", field=name)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"MetaConfig.{name} = {value!r}: must be one of {', '.join(choices)}", field=name)


def _check_family(name) -> None:
    _check_choice("family", name, list_families())


def tuned_values(values: dict[str, Any]) -> dict[str, Any]:
    """`values` over the `TUNED` settings of the family and algo they name (defaults where they name none).

    Args:
      values: `{field: value}` for any subset of the fields.

    Returns:
      The tuned settings with `values` over them; `values` itself where none are tuned.
    """
    key = (values.get("family", MetaConfig.family), values.get("algo", MetaConfig.algo))
    return {**TUNED.get(key, {}), **values}
