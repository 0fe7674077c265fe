//! Services: the pieces of an application, started and stopped together (Twisted's `twisted.application.service`).
