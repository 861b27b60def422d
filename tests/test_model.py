"""The local network's scorer: the mean logit of a crop and its mirror image, from folded weights."""

from __future__ import annotations

import numpy as np
import pytest

import model


@pytest.fixture(scope="module")
def network():
    """A small network of `build`'s shape whose batch normalisation is not the identity, as a trained
    one's is not."""
    import keras

    keras.utils.set_random_seed(7)
    network = model.build(32, widths=(8, 16), stem=4)
    rng = np.random.default_rng(7)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape),
                    rng.uniform(0.3, 3.0, variance.shape),
                ]
            )
    return network


def crops(count: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def logit(probability: np.ndarray) -> np.ndarray:
    probability = probability.astype(np.float64)
    return np.log(probability) - np.log1p(-probability)


def test_the_score_is_the_mean_logit_of_the_network_for_a_crop_and_its_mirror(network):
    batch = crops()
    mirrored = np.ascontiguousarray(batch[:, :, ::-1])
    plain = network(batch, training=False).numpy()[:, 0]
    flipped = network(mirrored, training=False).numpy()[:, 0]
    assert not np.allclose(plain, flipped, atol=1e-3)  # the network alone tells the two views apart

    scores = model.MirroredScorer(network)(batch)
    assert scores.shape == (len(batch),)
    assert np.allclose(logit(scores), (logit(plain) + logit(flipped)) / 2, atol=1e-4)
    assert np.array_equal(model.MirroredScorer(network)(mirrored), scores)
    assert model.MirroredScorer(network)(batch[:0]).shape == (0,)


def test_a_temperature_in_the_last_layer_divides_the_scorers_logit(network):
    import keras

    batch = crops(seed=1)
    before = logit(model.MirroredScorer(network)(batch))
    calibrated = keras.models.clone_model(network)
    calibrated.set_weights(network.get_weights())
    model.apply_temperature(calibrated, 2.0)
    assert np.allclose(logit(model.MirroredScorer(calibrated)(batch)), before / 2.0, atol=1e-4)


def test_the_local_model_scores_crops_of_any_size_as_the_scorer_does(network, tmp_path):
    network.save(tmp_path / "net.keras")
    local = model.LocalModel(tmp_path / "net.keras")
    images = [np.full((40, 60, 3), 90, dtype=np.uint8), crops(1, seed=2)[0]]
    expected = model.MirroredScorer(network)(np.stack([model.resize(image, 32) for image in images]))
    assert np.allclose(local.predict(images), expected, atol=1e-6)
    assert local.predict([]).shape == (0,)


def test_a_network_of_another_shape_is_refused_by_name():
    import keras

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    with pytest.raises(ValueError, match="MaxPooling2D"):
        model.MirroredScorer(keras.Model(inputs, outputs))


@pytest.mark.parametrize("stem", [4, 0])
def test_a_widened_network_computes_what_the_narrow_one_did(network, stem):
    import keras

    keras.utils.set_random_seed(8)
    narrow = network if stem else model.build(32, widths=(8, 16), stem=0)
    batch = crops(seed=3)
    wider = model.widen(narrow, (12, 24), noise=0.0)
    assert model.widths_of(narrow) == (8, 16) and model.widths_of(wider) == (12, 24)
    assert wider.count_params() > narrow.count_params()
    assert np.allclose(wider(batch, training=False), narrow(batch, training=False), atol=1e-5)
    assert np.allclose(model.MirroredScorer(wider)(batch), model.MirroredScorer(narrow)(batch), atol=1e-5)
    first = wider.layers[[type(layer) for layer in wider.layers].index(keras.layers.Conv2D)]
    assert first.filters == (stem or 12)  # a stem keeps its width

    noisy = model.widen(narrow, (12, 24), noise=0.01)  # the copies differ a little from their filters

    def kernels(net):
        return [layer.get_weights()[0] for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]

    for before, exact, shaken in zip(kernels(narrow), kernels(wider), kernels(noisy), strict=True):
        old = before.shape[-1]  # the first filters are the narrow network's, the rest copies
        assert np.array_equal(exact[..., :old], shaken[..., :old])
        assert all(not np.allclose(exact[..., i], shaken[..., i]) for i in range(old, exact.shape[-1]))
    assert np.allclose(noisy(batch, training=False), narrow(batch, training=False), atol=0.02)


def test_widen_only_adds_filters_to_the_same_stages(network):
    for widths in [(8, 12), (8, 16, 32), (8,)]:
        with pytest.raises(ValueError, match="can only add filters"):
            model.widen(network, widths)
    assert model.widths_of(model.widen(network, (8, 16))) == (8, 16)


def test_a_network_at_another_input_size_keeps_its_weights_and_takes_the_new_size(network):
    resized = model.at_input_size(network, 40)
    assert resized.input_shape == (None, 40, 40, 3)
    for got, kept in zip(resized.get_weights(), network.get_weights(), strict=True):
        assert np.array_equal(got, kept)
    batch = np.random.default_rng(1).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    plain = resized(batch, training=False).numpy()[:, 0]
    flipped = resized(np.ascontiguousarray(batch[:, :, ::-1]), training=False).numpy()[:, 0]
    assert np.allclose(logit(model.MirroredScorer(resized)(batch)), (logit(plain) + logit(flipped)) / 2, atol=1e-4)
