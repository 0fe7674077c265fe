//! Protocol building blocks (Twisted's `twisted.protocols`).

pub mod basic;
pub mod policies;
