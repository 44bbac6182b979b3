"""Signals other apps hook into without the registry depending on them."""

from django.dispatch import Signal

# Sent inside the transaction that created a version: version=, actor=.
version_created = Signal()

# Sent while a version's bundle is built (and to fingerprint its input): version=. Receivers
# return a list of (filename, bytes) to add to the bundle, e.g. the model card.
bundle_files = Signal()
