//! Small internal helpers.

mod slab;

pub(crate) use slab::Slab;
