"""Every error the kiosk raises, under one base.

Each kind also inherits the builtin it stands for (as gpiozero's ``exc.py``
does), so ``except ValueError`` / ``except RuntimeError`` keep catching it;
catch ``KioskError`` for "anything the kiosk refused or could not do".
"""

from __future__ import annotations


class KioskError(Exception):
    """Base of every kiosk error."""


class ConfigError(KioskError, ValueError):
    """The kiosk config (or a file it points to) is wrong; the message says where and why."""


class PinMapError(ConfigError):
    """The pin map is wrong; the message names the file and the entry."""


class UpdateRefused(KioskError, ValueError):
    """This target must not be installed; the message goes into status."""


class OutboxSchemaError(KioskError, RuntimeError):
    """The outbox file was written by a newer release with another layout."""


class SpeechUnavailable(KioskError, RuntimeError):
    """espeak-ng is not installed; install the espeak-ng package or turn [ui] audio off."""
