//! Unix domain sockets (Twisted's `listenUNIX`/`connectUNIX`).
