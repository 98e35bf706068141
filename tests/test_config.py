"""`MetaConfig`: working defaults; each bad value refused with its field, value and what is allowed."""

import dataclasses
import math

import pytest

import metaq_jax as mq


def test_defaults_are_valid_and_round_trip():
    config = mq.MetaConfig()
    assert config.algo == "maml" and config.family == "nav2d"
    assert mq.MetaConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_tasks = 3


@pytest.mark.parametrize("field, value, message", [
    ("algo", "sgd", "must be one of maml, fomaml, reptile, pretrain"),
    ("family", "atari", "must be one of acrobot, asterix, bandit, bandit-gaussian, "),
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
    ("remat", "yes", "must be true or false"),
    ("seed", -1, "must be an integer >= 0"),
])
def test_invalid_values_name_field_value_and_allowed(field, value, message):
    with pytest.raises(ValueError) as error:
        mq.MetaConfig(**{field: value})
    text = str(error.value)
    assert text.startswith(f"MetaConfig.{field} = {value!r}: ") and message in text
    assert "\n" not in text


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown field.*num_taskz"):
        mq.MetaConfig.from_dict({"num_taskz": 3})
