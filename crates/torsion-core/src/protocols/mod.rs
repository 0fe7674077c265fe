//! Protocol building blocks (Twisted's `twisted.protocols`).

pub mod basic;
pub mod haproxy;
pub mod policies;
pub mod portforward;
