"""Telling people (seed S5, S6): e-mail with a persistent outbox, the daily check, escalation."""
