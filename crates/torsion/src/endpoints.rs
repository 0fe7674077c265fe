//! Endpoints: where to listen or connect, from strings (Twisted's `twisted.internet.endpoints`).
