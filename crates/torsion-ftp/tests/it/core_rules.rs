//! The control connection's rules, on the I/O-free core.
