"""Faults on purpose: the catalogue (what can be injected, validated up front), the injector
(apply / clear / verify), detached chaos workers (bursts, retry storms, timed reverts), the
load generator they share with the game-day, and the audit trail. Core code: never prints."""
