"""Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021), the optimiser Self-Blended Images trains
with (Shiohara and Yamasaki, CVPR 2022; rho 0.05).

Each step takes the gradient twice: once at the weights, to find the direction in which the loss rises
fastest, and once at the weights moved a distance ``rho`` that way (the worst point of the ball around
them, to first order). The optimiser then applies the second gradient at the first weights. It seeks
weights whose whole neighbourhood has a low loss, a flat minimum, and flat minima are the ones that hold
up best on data unlike the training data. A step costs two forward and backward passes.

This module imports nothing of the project but tf_runtime.
"""

from __future__ import annotations

import tf_runtime


def sharpness_aware(model, rho: float):
    """A Keras model with ``model``'s inputs, outputs and layers (shared, not copied) whose `fit`
    takes sharpness-aware steps of radius ``rho``. Compile and fit it as ``model`` would be; the loss
    it reports is the loss at the weights, before the step."""
    tf = tf_runtime.load()
    import keras

    class SharpnessAware(keras.Model):
        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            weights = self.trainable_weights
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            loss_metric = next(metric for metric in self.metrics if metric.name == "loss")
            loss_metric.update_state(loss, sample_weight=tf.shape(x)[0])  # as Keras's own train_step
            gradients = tape.gradient(loss, weights)
            scale = rho / (tf.linalg.global_norm(gradients) + 1e-12)
            climbs = [gradient * scale for gradient in gradients]
            for weight, climb in zip(weights, climbs, strict=True):
                weight.assign_add(climb)
            with tf.GradientTape() as tape:
                worst = self(x, training=True)
                worst_loss = self.compute_loss(x=x, y=y, y_pred=worst, sample_weight=sample_weight, training=True)
            gradients = tape.gradient(worst_loss, weights)
            for weight, climb in zip(weights, climbs, strict=True):
                weight.assign_sub(climb)
            self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
            return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    outputs = model.outputs if len(model.outputs) > 1 else model.output
    return SharpnessAware(model.input, outputs, name=f"{model.name}_sharpness_aware")
