"""The local catalog: one SQLite file in the state folder that holds the history an audit
needs (runs with their protocols; the register, outbox and daily check add their tables)."""
