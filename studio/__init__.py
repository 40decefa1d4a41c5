"""NextPick Studio: the desktop app over ``core.engine.Engine``.

Everything here is presentation: pages read the engine through ``studio.context`` and run its
long jobs through ``studio.workers``; no recommendation logic lives in this package.
"""
