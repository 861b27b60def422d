"""The local deepfake network: build it, load it, and predict P(DeepFake) for eye/nose/mouth crops.

This module imports nothing of the project but tf_runtime. Crops are RGB uint8 arrays of any size;
they are resized to INPUT_SIZE here, so training and analysis see the same input.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

import tf_runtime

INPUT_SIZE = 128
WIDTHS = (24, 48, 96, 192, 256)  # the filters of each of `build`'s five stages


def resize(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """A crop resized to size x size (the aspect ratio is not kept: the crop is already tight)."""
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def build(input_size: int = INPUT_SIZE, widths: tuple[int, ...] = WIDTHS, stem: int = 16, dropout: float = 0.3):
    """A plain CNN trained from scratch (no pretrained weights can be had here): a full-resolution
    3x3 convolution of ``stem`` filters (0: none), so fine texture reaches the network before any
    striding, then five stages of two 3x3 convolutions, the first of each with stride 2, then global
    average pooling.
    Input: uint8 RGB; output: P(DeepFake). Plain convolutions train about twice as fast on a 2-core
    CPU as separable ones of the same size."""
    tf_runtime.load()
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="crop")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(keras.ops.cast(inputs, "float32"))
    if stem:
        x = layers.Conv2D(stem, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    for filters in widths:
        for stride in (2, 1):
            x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_deepfake")(x)
    return keras.Model(inputs, outputs, name="deepfake_crop_cnn")


XRAY_STRIDE = 8  # a face X-ray is predicted from the features at an eighth of the input's size


def xray_size(input_size: int) -> int:
    """The side of the face X-ray map predicted for a crop of ``input_size``."""
    return input_size // XRAY_STRIDE


def with_xray_head(network, filters: int = 32):
    """A training model around ``network`` (made by `build`, its layers shared, not copied) with a
    second output: the crop's face X-ray (Li et al., CVPR 2020), where the blend boundary runs, read
    by a small head (a 3x3 convolution of ``filters``, then a 1x1 one) from the last features at an
    eighth of the input's size. Learning where the boundary is, not only whether there is one, asks
    the network for the trace any blend leaves rather than what one dataset's fakes look like. The
    head is for training only: analysis uses ``network`` alone."""
    tf_runtime.load()
    import keras
    from keras import layers

    side = xray_size(network.input_shape[1])
    features = [layer for layer in network.layers if isinstance(layer, layers.ReLU) and layer.output.shape[1] == side]
    if not features:
        raise ValueError(f"the network has no features at {side} x {side} to read a face X-ray from")
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name="xray_features")(features[-1].output)
    xray = layers.Conv2D(1, 1, activation="sigmoid", name="xray")(x)
    return keras.Model(network.inputs, [network.output, xray], name=f"{network.name}_with_xray")


def widths_of(network) -> tuple[int, ...]:
    """The stage widths of a network made by `build` (the stem, if any, is not a stage)."""
    from keras import layers

    filters = [layer.filters for layer in network.layers if isinstance(layer, layers.Conv2D)]
    return tuple(filters[len(filters) % 2 :: 2])


def widen(network, widths: tuple[int, ...], seed: int = 0, noise: float = 0.01):
    """A wider copy of a network made by `build` that computes the same function (Net2WiderNet, Chen,
    Goodfellow and Shlens, ICLR 2016), so that a wider network can be trained on from a trained one
    instead of from scratch.

    Each stage keeps its filters and gains copies of filters drawn at random from them, with their
    batch normalisation; the layer after divides the weights it reads from a filter by the number of
    copies of it, so the sum it makes is unchanged. The copies' own weights get Gaussian noise of
    ``noise`` times the spread of each filter's weights (0: an exact copy), else a filter and its copy
    would get the same gradients and never part. The stem and the input size are kept."""
    tf_runtime.load()
    from keras import layers

    widths = tuple(int(width) for width in widths)
    before = widths_of(network)
    if len(widths) != len(before) or any(new < old for new, old in zip(widths, before, strict=True)):
        raise ValueError(f"widen keeps the {len(before)} stages and can only add filters: {widths} from {before}")

    def of_kind(net, kind):
        return [layer for layer in net.layers if isinstance(layer, kind)]

    convolutions = of_kind(network, layers.Conv2D)
    stem = convolutions[0].filters if len(convolutions) % 2 else 0
    dropout = next((layer.rate for layer in of_kind(network, layers.Dropout)), 0.0)
    wider = build(int(network.input_shape[1]), widths, stem=stem, dropout=dropout)

    rng = np.random.default_rng(seed)
    source = np.arange(3)  # which old input channel each new one copies
    copies = np.ones(3)  # how many new channels copy each old one
    pairs = zip(convolutions, of_kind(network, layers.BatchNormalization), strict=True)
    targets = zip(of_kind(wider, layers.Conv2D), of_kind(wider, layers.BatchNormalization), strict=True)
    for (conv, norm), (wide_conv, wide_norm) in zip(pairs, targets, strict=True):
        (kernel,) = conv.get_weights()
        old, new = kernel.shape[-1], wide_conv.filters
        kernel = kernel[:, :, source, :] / copies[source][None, None, :, None]
        chosen = np.concatenate([np.arange(old), rng.integers(0, old, new - old)])
        kernel = kernel[..., chosen]
        if new > old:
            spread = kernel[..., old:].std(axis=(0, 1, 2), keepdims=True)
            kernel[..., old:] += rng.normal(0.0, 1.0, kernel[..., old:].shape) * spread * noise
        wide_conv.set_weights([kernel.astype(np.float32)])
        wide_norm.set_weights([weight[chosen] for weight in norm.get_weights()])
        source, copies = chosen, np.bincount(chosen, minlength=old)
    kernel, bias = network.layers[-1].get_weights()
    wider.layers[-1].set_weights([kernel[source] / copies[source][:, None], bias])
    return wider


def at_input_size(network, size: int):
    """The same network with the same weights, taking size x size crops: no layer's weights depend
    on the input size (global average pooling comes before the dense layer)."""
    tf_runtime.load()
    import keras

    resized = keras.models.clone_model(network, input_tensors=keras.Input((size, size, 3), dtype="uint8", name="crop"))
    resized.set_weights(network.get_weights())
    return resized


def apply_temperature(network, temperature: float) -> None:
    """Divide the network's output logit by ``temperature`` (calibration), in its last layer's weights,
    so the saved model answers calibrated probabilities at no cost."""
    dense = network.get_layer("p_deepfake")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])


class MirroredScorer:
    """P(DeepFake) of a network made by `build`, for a batch of uint8 crops at its input size: the
    sigmoid of the mean of its logits for each crop and for the crop's mirror image (left and right
    swapped). A face and its mirror are equally real or fake, and the two views err differently: on
    val, each of the four models tried scored 0.006 to 0.008 higher this way (MODEL_CARD.md, "Mirrored
    views").

    Both views together cost less than two plain passes: the weights are read once from the network
    as it stands (batch normalisation, in its inference form, folded into the convolution before it)
    and the pass runs as one compiled TensorFlow function. Build a new scorer after the weights change.
    """

    def __init__(self, network):
        tf = tf_runtime.load()
        from keras import layers

        steps: list[tuple] = []  # ("scale", scale, offset) | ("conv", kernel, bias, strides) | ("relu",) | ("pool",)
        dense = None
        for layer in network.layers:
            if isinstance(layer, layers.InputLayer | layers.Dropout):
                continue
            if isinstance(layer, layers.Rescaling):
                steps.append(("scale", float(layer.scale), float(layer.offset)))
            elif (
                isinstance(layer, layers.Conv2D)
                and layer.padding == "same"
                and layer.activation.__name__ == "linear"
                and layer.dilation_rate == (1, 1)
                and layer.groups == 1
            ):
                weights = layer.get_weights()
                kernel = weights[0]
                bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
                steps.append(("conv", kernel, bias, layer.strides))
            elif isinstance(layer, layers.BatchNormalization) and steps and steps[-1][0] == "conv":
                gamma, beta, mean, variance = layer.get_weights()
                factor = gamma / np.sqrt(variance + layer.epsilon)
                _, kernel, bias, strides = steps[-1]
                steps[-1] = ("conv", kernel * factor, (bias - mean) * factor + beta, strides)
            elif isinstance(layer, layers.ReLU):
                steps.append(("relu",))
            elif isinstance(layer, layers.GlobalAveragePooling2D):
                steps.append(("pool",))
            elif (
                isinstance(layer, layers.Dense)
                and layer is network.layers[-1]
                and layer.activation.__name__ == "sigmoid"
            ):
                dense = layer.get_weights()
            else:
                raise ValueError(f"MirroredScorer does not know the layer {layer.name} ({type(layer).__name__})")
        if dense is None:
            raise ValueError("MirroredScorer needs the network's last layer to be a Dense layer with a sigmoid")
        steps = [tuple(tf.constant(p) if isinstance(p, np.ndarray) else p for p in step) for step in steps]
        kernel, bias = (tf.constant(weight) for weight in dense)
        size = int(network.input_shape[1])

        def logits(x):
            for step in steps:
                if step[0] == "scale":
                    x = x * step[1] + step[2]
                elif step[0] == "conv":
                    x = tf.nn.bias_add(tf.nn.conv2d(x, step[1], strides=(1, *step[3], 1), padding="SAME"), step[2])
                elif step[0] == "relu":
                    x = tf.nn.relu(x)
                else:
                    x = tf.reduce_mean(x, axis=(1, 2))
            return tf.matmul(x, kernel) + bias

        @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8)])
        def score(crops):
            x = tf.cast(crops, tf.float32)
            both = logits(tf.concat([x, tf.reverse(x, axis=[2])], axis=0))
            plain, mirrored = tf.split(both, 2)
            return tf.sigmoid((plain + mirrored) / 2)[:, 0]

        self._score = score

    def __call__(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """P(DeepFake) for each crop, ``batch_size`` crops a pass (none for no crops)."""
        parts = [self._score(crops[start : start + batch_size]).numpy() for start in range(0, len(crops), batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class LocalModel:
    """A trained network loaded once; thread-safe prediction in batches."""

    def __init__(self, path: str | Path):
        tf_runtime.load()
        import keras

        self.path = Path(path)
        self.network = keras.models.load_model(self.path, compile=False)
        self.input_size = int(self.network.input_shape[1])
        self.scorer = MirroredScorer(self.network)
        self._lock = threading.Lock()

    def predict(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """P(DeepFake) for each RGB crop (see `MirroredScorer`)."""
        if not images:
            return np.zeros(0, dtype=np.float32)
        batch = np.stack([resize(image, self.input_size) for image in images])
        with self._lock:
            scores = self.scorer(batch, batch_size)
        return scores.astype(np.float32)
