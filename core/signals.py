"""Signals the kernel sends and apps answer, so the kernel need not import them."""

from __future__ import annotations

from django.dispatch import Signal

# An edge refused a request with a DomainError marked as a refusal (exc.refusal): a denied
# permission, a gate. Sent with request= and exc=; governance records it in the audit log.
refusal = Signal()
