"""Rendering protocols for people: console text, HTML and PDF, in German (default) or English."""
