"""Training of the suite's learned configurations (``python -m bench.train``, ``nox -s train``).

A tool above the codec layer: it builds a configuration's network through the codec's public
:meth:`~bench.codecs.learned.LearnedCodec.untrained_network`, trains it on the images of a
training folder with the rate-distortion objective, and exports a plain ``state_dict`` that the
codec loads like any other weights file (``weights_only=True``).

* :mod:`bench.training.data` — training images, the held-out split, seeded random crops.
* :mod:`bench.training.loop` — the objective, the resumable loop, the loss curve.
* :mod:`bench.training.export` — the shipped weights file and its description.
"""
