"""Sharpness-aware steps, checked against steps worked out by hand on a quadratic loss."""

from __future__ import annotations

import numpy as np
import pytest

import sharpness


def two_weights(start: tuple[float, float]):
    """A network whose loss on its one batch is (w1^2 + w2^2) / 2: a linear unit without bias, each
    input picking one weight, fitted to 0 by mean squared error. Its gradient is (w1, w2)."""
    import keras

    inputs = keras.Input((2,))
    unit = keras.layers.Dense(1, use_bias=False, name="unit")
    network = keras.Model(inputs, unit(inputs))
    unit.set_weights([np.array([[start[0]], [start[1]]], dtype=np.float32)])
    return network


BATCH = (np.eye(2, dtype=np.float32), np.zeros((2, 1), dtype=np.float32))


def one_step(network, learning_rate: float = 0.1) -> tuple[np.ndarray, float]:
    import keras

    network.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    history = network.fit(*BATCH, batch_size=2, epochs=1, shuffle=False, verbose=0)
    return network.get_layer("unit").get_weights()[0].ravel(), history.history["loss"][0]


def test_a_sharpness_aware_step_takes_the_gradient_at_the_worst_nearby_weights():
    """From w = (3, 4) the gradient (3, 4) has length 5, so radius 0.5 climbs to w + 0.5 (0.6, 0.8) =
    (3.3, 4.4), whose gradient is (3.3, 4.4); SGD at 0.1 applies it at w: (2.67, 3.56). A plain step
    applies (3, 4): (2.7, 3.6)."""
    plain, plain_loss = one_step(two_weights((3.0, 4.0)))
    np.testing.assert_allclose(plain, [2.7, 3.6], atol=1e-6)
    network = two_weights((3.0, 4.0))
    stepped, loss = one_step(sharpness.sharpness_aware(network, 0.5))
    np.testing.assert_allclose(stepped, [2.67, 3.56], atol=1e-6)
    np.testing.assert_allclose(network.get_layer("unit").get_weights()[0].ravel(), stepped)  # its layers, shared
    assert loss == pytest.approx(plain_loss) == pytest.approx(12.5)  # reported at w, before the step: 25 / 2


def test_radius_zero_steps_as_plainly_as_no_wrapper():
    stepped, _ = one_step(sharpness.sharpness_aware(two_weights((3.0, 4.0)), 0.0))
    np.testing.assert_allclose(stepped, [2.7, 3.6], atol=1e-6)


def test_a_network_with_two_outputs_is_stepped_through_both():
    import keras

    inputs = keras.Input((2,))
    first = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="first")(inputs)
    second = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="second")(inputs)
    wrapped = sharpness.sharpness_aware(keras.Model(inputs, [first, second]), 0.5)
    wrapped.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", "mse"])
    wrapped.fit(BATCH[0], (BATCH[1], BATCH[1]), batch_size=2, epochs=1, verbose=0)
    # four weights of 1, each with gradient 1 (the loss is the sum of both outputs' (w1^2 + w2^2) / 2):
    # the gradient has length 2, so each climbs 0.25, to a gradient of 1.25; SGD at 0.1 leaves 0.875
    for name in ("first", "second"):
        np.testing.assert_allclose(wrapped.get_layer(name).get_weights()[0].ravel(), [0.875, 0.875], atol=1e-6)
