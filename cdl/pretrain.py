"""Greedy layer-wise supervised pretraining (Bengio et al. 2007, "Greedy Layer-Wise Training of
Deep Networks", sec. 4: the supervised variant).

    net = greedy_pretrain([lambda: [L.Affine(64, 64, init="xavier"), L.Sigmoid()]] * 4,
                          lambda n: L.Affine(n, 10), lambda: optim.SGD(lr=0.5),
                          x_train, t_train, epochs_per_stage=5, seed=0)
    Trainer(net, optim.SGD(lr=0.5), epochs=20).fit(x_train, t_train)   # fine-tuning

Stage 1 trains the first hidden block under a temporary output head, as a
one-hidden-layer net; stage k keeps blocks 1..k-1 as they are, adds block k
and a fresh head on top and trains again. Deep stacks of saturating units
(Sigmoid, Tanh), where gradients reaching the lower layers of a randomly
initialized net are small, start fine-tuning from weights that already
separate the classes.
"""
import numpy as np

from cdl.init import rng_scope
from cdl.layers.base import Layer
from cdl.train import Trainer


def _layers(who, made):
    """A builder's result as a list of Layers."""
    made = list(made) if isinstance(made, (list, tuple)) else [made]
    for layer in made:
        if not isinstance(layer, Layer):
            raise ValueError(f"greedy_pretrain: {who} returned {type(layer).__name__}, not a "
                             f"cdl Layer or a list of them")
    return made


def greedy_pretrain(hidden_builders, head_builder, make_optimizer, x, t, epochs_per_stage=5,
                    seed=None, freeze_lower=False, loss=None, validation_data=None,
                    **trainer_kwargs):
    """A Sequential of the hidden blocks and the last stage's head, trained block by block.

    hidden_builders: one callable per hidden block, ``builder()`` returning a
    Layer or a list of Layers (e.g. ``[Affine(64, 64), Sigmoid()]``);
    head_builder(n) the output layer(s) for n input features per sample
    (e.g. ``Affine(n, 10)``), called once per stage. Layers built with
    ``rng=None`` draw their weights from a generator of ``seed`` and the
    stage. make_optimizer() gives a fresh optimizer per stage; stage k trains
    with ``Trainer(net, make_optimizer(), epochs=epochs_per_stage, seed=seed + k,
    **trainer_kwargs)`` (verbose off unless asked). freeze_lower=True keeps
    the lower blocks fixed during each stage (``trainable = False``), as
    Bengio et al. do; False trains them too. Every stage fits (x, t), with
    validation_data passed to its ``fit``. loss: a Loss (default
    SoftmaxCrossEntropy). The returned net, ready for fine-tuning, has the
    layers' trainable flags as built and ``pretrain_histories``: one history
    dict per stage.
    """
    from cdl.layers import SoftmaxCrossEntropy
    from cdl.model import Sequential

    builders = list(hidden_builders)
    if not builders or not all(callable(b) for b in builders):
        raise ValueError("greedy_pretrain: hidden_builders must be a non-empty list of "
                         "callables builder() -> layers")
    if not callable(head_builder) or not callable(make_optimizer):
        raise ValueError("greedy_pretrain: head_builder and make_optimizer must be callable")
    if len(x) != len(t) or len(x) == 0:
        raise ValueError(f"greedy_pretrain: {len(t)} targets for {len(x)} samples")
    loss = SoftmaxCrossEntropy() if loss is None else loss
    trainer_kwargs.setdefault("verbose", False)
    base = 0 if seed is None else int(seed)
    hidden, histories, flags = [], [], {}
    for k, build in enumerate(builders):
        with rng_scope(None if seed is None else np.random.default_rng([base, k])):
            block = _layers(f"hidden builder {k}", build())
            lower = len(hidden)
            hidden += block
            n = int(np.prod(Sequential(hidden).forward(x[:1]).shape[1:]))
            head = _layers(f"head_builder({n})", head_builder(n))
        for layer in block + head:
            flags[id(layer)] = layer.trainable
        for layer in hidden[:lower]:
            layer.trainable = flags[id(layer)] and not freeze_lower
        net = Sequential(hidden + head, loss=loss)
        trainer = Trainer(net, make_optimizer(), epochs=epochs_per_stage,
                          seed=None if seed is None else base + k, **trainer_kwargs)
        histories.append(trainer.fit(x, t, validation_data=validation_data))
    for layer in net.layers:
        layer.trainable = flags[id(layer)]
    net.pretrain_histories = histories
    return net


__all__ = ["greedy_pretrain"]
