"""The torture and security harness: crash, corruption, bad-input, fuzzing and security figures
anyone can repeat (``python -m praxisbackup.torture``). See docs/reliability.md."""
