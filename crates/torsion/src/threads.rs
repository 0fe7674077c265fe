//! Threads: run blocking work off the reactor (Twisted's `twisted.internet.threads`).
