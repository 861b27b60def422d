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


def resize(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """A crop resized to size x size (the aspect ratio is not kept: the crop is already tight)."""
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def build(
    input_size: int = INPUT_SIZE, widths: tuple[int, ...] = (24, 48, 96, 192, 256), stem: int = 16, dropout: float = 0.3
):
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


def apply_temperature(network, temperature: float) -> None:
    """Divide the network's output logit by ``temperature`` (calibration), in its last layer's weights,
    so the saved model answers calibrated probabilities at no cost."""
    dense = network.get_layer("p_deepfake")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])


class LocalModel:
    """A trained network loaded once; thread-safe prediction in batches."""

    def __init__(self, path: str | Path):
        tf_runtime.load()
        import keras

        self.path = Path(path)
        self.network = keras.models.load_model(self.path, compile=False)
        self.input_size = int(self.network.input_shape[1])
        self._lock = threading.Lock()

    def predict(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """P(DeepFake) for each RGB crop."""
        if not images:
            return np.zeros(0, dtype=np.float32)
        batch = np.stack([resize(image, self.input_size) for image in images])
        with self._lock:
            scores = [
                self.network(batch[start : start + batch_size], training=False).numpy()
                for start in range(0, len(batch), batch_size)
            ]
        return np.concatenate(scores).reshape(-1).astype(np.float32)
