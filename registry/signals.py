"""Signals other apps hook into without the registry depending on them."""

from django.dispatch import Signal

# Sent inside the transaction that created a version: version=, actor=.
version_created = Signal()

# Sent while a version's bundle is built (and to fingerprint its input): version=. Receivers
# return a list of (filename, bytes) to add to the bundle, e.g. the model card.
bundle_files = Signal()

# Sent by the periodic sweep (registry.tasks.sweep), which queues again what lost messages and
# dead workers left behind. Receivers sweep their own work and return {name: how many}, e.g.
# governance's webhook deliveries.
sweeping = Signal()
