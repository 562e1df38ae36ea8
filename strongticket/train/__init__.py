"""Training-based tickets: datasets on the device, one masked training loop, pruning methods, run directories.

Public entry points: :func:`strongticket.train.data.load_dataset`, :func:`strongticket.train.run.train_run`
and the method registry in :mod:`strongticket.train.methods`.
"""
