"""Figures written the same way by the CLI and the studio; imports nothing heavy (no torch), since
the studio's window and the CLI's quick commands use it."""

# Why a run has no test figures when it tested nobody (a log of one- and two-event users).
NO_TEST_USER = "no user has an event to hold out (the protocol line says why)"


def p_text(p: float) -> str:
    """"p = 0.0057", "p = 4.43e-12", or "p < 1e-300" where a p-value underflowed to 0 (item-kNN
    against popularity over 20,000 users of a session log read "p = 0.")."""
    return f"p = {p:.3g}" if p > 0 else "p < 1e-300"
