"""Signals other apps hook into without the registry depending on them."""

from django.dispatch import Signal

# Sent inside the transaction that created a version: version=, actor=.
version_created = Signal()
