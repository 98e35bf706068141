"""`MetaConfig`: working defaults; each bad value refused with its field, value and what is allowed."""

import dataclasses
import math

import pytest

import metaq_jax as mq
from metaq_jax import config as config_mod


def test_defaults_are_valid_and_round_trip():
    config = mq.MetaConfig()
    assert config.algo == "maml" and config.family == "nav2d"
    assert mq.MetaConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_tasks = 3


@pytest.mark.parametrize("field, value, message", [
    ("algo", "sgd", "must be one of maml, fomaml, reptile, pretrain, rl2, pearl, mql"),
    ("trial_episodes", 0, "must be a positive integer"),
    ("adapt_every", -1, "must be an integer >= 0"),
    ("test_batch", -1, "must be an integer >= 0"),
    ("member_batch", -2, "must be an integer >= 0"),
    ("network", "attention", "must be one of mlp, tabular"),
    ("family", "atari", "must be one of acrobot, ant-dir, ant-goal, asterix, bandit, bandit-gaussian, "),
    ("num_tasks", 0, "must be a positive integer"),
    ("num_tasks", 2.5, "must be a positive integer"),
    ("num_tasks", True, "must be a positive integer"),
    ("inner_steps", -1, "must be an integer >= 0"),
    ("num_envs", -4, "must be a positive integer"),
    ("rollout_length", "10", "must be a positive integer"),
    ("inner_lr", math.nan, "must be a finite number >= 0"),
    ("inner_lr", math.inf, "must be a finite number >= 0"),
    ("outer_lr", 0.0, "must be a finite number > 0"),
    ("epsilon", 1.5, "must be a finite number >= 0 and <= 1"),
    ("gamma", -0.1, "must be a finite number >= 0 and <= 1"),
    ("target_update_period", 0, "must be a positive integer"),
    ("hidden_sizes", (64, 0), "must be a tuple of positive integers"),
    ("activation", "sigmoid", "must be one of relu, tanh, gelu, silu"),
    ("outer_optimizer", "lbfgs", "must be one of adam, sgd"),
    ("outer_schedule", "step", "must be one of constant, cosine, linear"),
    ("remat", "yes", "must be true or false"),
    ("seed", -1, "must be an integer >= 0"),
])
def test_invalid_values_name_field_value_and_allowed(field, value, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(**{field: value})
    text = str(error.value)
    assert text.startswith(f"MetaConfig.{field} = {value!r}: ") and message in text
    assert "\n" not in text
    assert error.value.field == field  # what the CLI reads to say where a refused value came from


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown field.*num_taskz"):
        mq.MetaConfig.from_dict({"num_taskz": 3})


@pytest.mark.parametrize("changes, message", [
    ({"inner_steps": 1}, "MetaConfig.inner_steps = 1: not used by algo rl2 (a memory learner"),
    ({"meta_sgd": True}, "MetaConfig.meta_sgd = True: not used by algo rl2"),
    ({"inner_lr": 0.5}, "MetaConfig.inner_lr = 0.5: not used by algo rl2"),
    ({"rollout_length": 20}, "MetaConfig.rollout_length = 20: not used by algo rl2"),
    ({"adapt_every": 5}, "MetaConfig.adapt_every = 5: not used by algo rl2"),
    ({"support_epsilon": 0.5}, "MetaConfig.support_epsilon = 0.5: not used by algo rl2 (a memory learner; "
                               "support_epsilon is for gradient and latent learners)"),
    ({"network": "tabular"}, "MetaConfig.network = 'tabular': must be one of mlp, attention"),
    ({"cell": "rnn"}, "MetaConfig.cell = 'rnn': must be one of gru, lstm"),
    ({"cell_size": 0}, "MetaConfig.cell_size = 0: must be a positive integer"),
    ({"td_lambda": 1.5}, "MetaConfig.td_lambda = 1.5: must be a finite number >= 0 and <= 1"),
    ({"network": "attention", "cell": "lstm"}, "MetaConfig.cell = 'lstm': not used with network 'attention'"),
    ({"network": "attention", "cell_size": 8}, "MetaConfig.cell_size = 8: not used with network 'attention'"),
    ({"attention_filters": 32}, "MetaConfig.attention_filters = 32: not used with network 'mlp'"),
    ({"attention_size": 64}, "MetaConfig.attention_size = 64: not used with network 'mlp'"),
    ({"network": "attention", "attention_filters": 0}, "MetaConfig.attention_filters = 0: must be a positive integer"),
    ({"network": "attention", "attention_size": 0}, "MetaConfig.attention_size = 0: must be a positive integer"),
])
def test_a_memory_learner_refuses_the_fields_it_does_not_use(changes, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(algo="rl2", **changes)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert error.value.field == message.split(" ")[0].removeprefix("MetaConfig.")


@pytest.mark.parametrize("changes, message", [
    ({"adapt": "torso"}, "MetaConfig.adapt = 'torso': must be one of all, head"),
    ({"adapt": "head", "algo": "reptile"}, "MetaConfig.adapt = 'head': needs network mlp and algo maml, fomaml or pretrain"),
    ({"adapt": "head", "network": "tabular"}, "MetaConfig.adapt = 'head': needs network mlp"),
    ({"adapt": "head", "algo": "rl2"}, "MetaConfig.adapt = 'head': not used by algo rl2"),
    ({"adapt": "head", "algo": "pearl"}, "MetaConfig.adapt = 'head': not used by algo pearl"),
])
def test_anil_is_a_gradient_learners_choice(changes, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(**changes)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert mq.MetaConfig(adapt="head", algo="fomaml").for_algo("pretrain").adapt == "head"


@pytest.mark.parametrize("changes", [{"cell": "lstm"}, {"cell_size": 32}, {"td_lambda": 0.9}, {"attention_filters": 8},
                                     {"attention_size": 16}])
def test_a_gradient_learner_refuses_the_memory_fields(changes):
    (name, value), = changes.items()
    with pytest.raises(ValueError, match=f"MetaConfig.{name} = {value!r}: not used by algo maml"):
        mq.MetaConfig(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"inner_steps": 1}, "MetaConfig.inner_steps = 1: not used by algo pearl (a latent learner"),
    ({"cell_size": 8}, "MetaConfig.cell_size = 8: not used by algo pearl (a latent learner"),
    ({"network": "attention"}, "MetaConfig.network = 'attention': must be one of mlp"),
    ({"latent_size": 0}, "MetaConfig.latent_size = 0: must be a positive integer"),
    ({"kl_weight": -0.1}, "MetaConfig.kl_weight = -0.1: must be a finite number >= 0"),
    ({"replay_size": 0}, "MetaConfig.replay_size = 0: must be a positive integer"),
    ({"context_size": 2.5}, "MetaConfig.context_size = 2.5: must be a positive integer"),
    ({"task_pool": 8}, "MetaConfig.task_pool = 8: must be >= num_tasks (16)"),
])
def test_a_latent_learner_checks_its_fields_and_refuses_the_others(changes, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(algo="pearl", **changes)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("algo", ["maml", "pearl", "mql"])
def test_the_gradient_and_latent_kinds_read_the_support_batchs_epsilon(algo):
    assert mq.MetaConfig(algo=algo, support_epsilon=0.25).support_epsilon == 0.25
    with pytest.raises(ValueError, match=r"MetaConfig.support_epsilon = 1.5: must be a finite number >= 0 and <= 1"):
        mq.MetaConfig(algo=algo, support_epsilon=1.5)


@pytest.mark.parametrize("changes, message", [
    ({"kl_weight": 0.5}, "MetaConfig.kl_weight = 0.5: not used by algo mql (a latent learner; kl_weight is for algo pearl)"),
    ({"context_size": 8}, "MetaConfig.context_size = 8: not used by algo mql (a latent learner; context_size is for algo pearl)"),
    ({"history_length": 0}, "MetaConfig.history_length = 0: must be a positive integer"),
    ({"adapt_steps": -1}, "MetaConfig.adapt_steps = -1: must be an integer >= 0"),
    ({"adapt_lr": 0.0}, "MetaConfig.adapt_lr = 0.0: must be a finite number > 0"),
    ({"beta_clip": float("inf")}, "MetaConfig.beta_clip = inf: must be a finite number > 0"),
    ({"propensity_samples": 0}, "MetaConfig.propensity_samples = 0: must be a positive integer"),
    ({"task_pool": 4}, "MetaConfig.task_pool = 4: must be >= num_tasks (16)"),
])
def test_mql_checks_its_fields_and_refuses_pearls(changes, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(algo="mql", **changes)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_pearl_refuses_the_fields_of_mql():
    with pytest.raises(ValueError, match="MetaConfig.history_length = 3: not used by algo pearl .*is for algo mql"):
        mq.MetaConfig(algo="pearl", history_length=3)


@pytest.mark.parametrize("algo", ["maml", "rl2"])
@pytest.mark.parametrize("changes", [{"latent_size": 3}, {"kl_weight": 1.0}, {"task_pool": 80}, {"gradient_steps": 2},
                                     {"adapt_steps": 3}])
def test_other_kinds_refuse_the_latent_fields(algo, changes):
    (name, value), = changes.items()
    with pytest.raises(ValueError, match=f"MetaConfig.{name} = {value!r}: not used by algo {algo}"):
        mq.MetaConfig(algo=algo, **changes)


def test_for_algo_resets_the_fields_the_new_kind_does_not_use():
    memory = mq.MetaConfig(algo="rl2", network="attention", trial_episodes=3, gamma=0.9)
    gradient = memory.for_algo("pretrain")
    assert (gradient.algo, gradient.network, gradient.trial_episodes, gradient.gamma) == ("pretrain", "mlp", 3, 0.9)
    back = mq.MetaConfig(inner_steps=2, adapt_every=4).for_algo("rl2")
    assert (back.inner_steps, back.adapt_every, back.kind) == (3, 0, "memory")


def test_tuned_settings_lie_under_the_given_values_for_their_family_and_algo_only():
    job = config_mod.tuned_values({})  # nothing given: the default job, nav2d maml
    assert mq.MetaConfig.from_dict(job) == mq.MetaConfig(**config_mod.TUNED[("nav2d", "maml")])
    assert config_mod.tuned_values({"meta_steps": 5, "seed": 2}) == {**job, "meta_steps": 5, "seed": 2}
    assert config_mod.tuned_values({"algo": "fomaml"}) == {"algo": "fomaml"}  # nothing tuned for it
    assert config_mod.tuned_values({"family": "cartpole"}) == {"family": "cartpole"}
    for (family, algo), settings in config_mod.TUNED.items():  # every tuned setting is a valid config
        mq.MetaConfig(family=family, algo=algo, **settings)
