"""Every error palaute_wire raises, under one base.

Each kind also inherits the builtin it stands for (as gpiozero's ``exc.py``
does), so ``except ValueError`` keeps catching it; catch ``PalauteWireError``
for "anything the shared package refused".
"""

from __future__ import annotations


class PalauteWireError(Exception):
    """Base of every palaute_wire error."""


class ContractError(PalauteWireError, ValueError):
    """A message that breaks the contract; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ManifestRefused(PalauteWireError, ValueError):
    """A manifest this kiosk must not install; the message says why (it goes into status)."""


class UnknownTimeZone(PalauteWireError, ValueError):
    """A time zone name with no zone behind it; the message names it."""


class BadMqttUrl(PalauteWireError, ValueError):
    """A broker URL that is not ``mqtt[s]://host[:port]``; the message says what is wrong."""
