"""The shared wire contract (topics, payloads, version) of Palaute.

Everything lives in :mod:`palaute_wire.contract`; this package exists so that
the kiosk and the fleet server can each be installed without the other.
"""
