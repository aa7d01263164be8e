"""How an objective runs: the one loop, its executors, the execution plan, stacked variants.

- :mod:`~causalunlearn.engine.verbs`: ``unlearn`` and ``train_from_scratch``.
- :mod:`~causalunlearn.engine.loop`: ``run_schedule`` (epochs, phases, batches) and ``TrainLog``.
- :mod:`~causalunlearn.engine.step`: the executors of one stage step (``fast``, ``reference``).
- :mod:`~causalunlearn.engine.plan`: the execution plan decided once before training.
- :mod:`~causalunlearn.engine.stacked`: K weight variants of a graph as one ``vmap`` run.
"""
