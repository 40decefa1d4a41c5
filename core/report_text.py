"""Figures written the same way by the CLI and the studio; imports nothing heavy (no torch), since
the studio's window and the CLI's quick commands use it."""

# Why a run has no test figures when it tested nobody (a log of one- and two-event users).
NO_TEST_USER = "no user has an event to hold out (the protocol line says why)"


def p_text(p: float) -> str:
    """"p = 0.0057", "p = 4.43e-12", or "p < 1e-300" where a p-value underflowed to 0 (item-kNN
    against popularity over 20,000 users of a session log read "p = 0.")."""
    return f"p = {p:.3g}" if p > 0 else "p < 1e-300"


def popularity_standing(gate: dict | None) -> str | None:
    """A run against popularity on validation: "beats" (significantly above), "worse" (significantly
    below) or "tie" (no significant difference: not shown better, so not made active by itself, but
    not shown worse either: an update scoring 0.116 against 0.086 over 200 users, p 0.16, read
    "WORSE"); None without a check. A check that recorded no figures is read as worse, as before."""
    if not gate or gate.get("beats_popularity") is None:
        return None
    if gate["beats_popularity"]:
        return "beats"
    figures = {"mean_a", "mean_b", "p_value", "alpha"} <= set(gate)
    below = figures and gate["mean_a"] < gate["mean_b"] and gate["p_value"] < gate["alpha"]
    return "worse" if below or not figures else "tie"
