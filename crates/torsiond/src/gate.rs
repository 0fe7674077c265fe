//! The worker gate: the worker threads wait for each other after building their services,
//! so that none runs unless every one could build its tree; and again after binding their
//! ports, so that privileges are dropped once, for the whole process, before any of them
//! serves.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Brings the worker threads together after they built their services: none runs unless
/// every one built its tree.
pub(crate) struct Gate {
    state: Mutex<GateState>,
    turn: Condvar,
}

struct GateState {
    arrived: usize,
    expected: usize,
    errors: Vec<(usize, String)>,
    /// Workers that bound their ports.
    bound: usize,
    /// Whether the last of them ran the step that follows binding.
    after_bound: bool,
}

impl Gate {
    pub(crate) fn new(expected: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                arrived: 0,
                expected,
                errors: Vec::new(),
                bound: 0,
                after_bound: false,
            }),
            turn: Condvar::new(),
        }
    }

    /// The state, even if a worker panicked holding it.
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Worker `index` could not build its services.
    pub(crate) fn error(&self, index: usize, message: String) {
        self.state().errors.push((index, message));
    }

    /// Only `count` workers exist (a thread could not be started).
    pub(crate) fn shrink(&self, count: usize, message: String) {
        let mut state = self.state();
        state.expected = count;
        state.errors.push((count, message));
        self.turn.notify_all();
    }

    /// Waits for every worker; true when all built their services.
    pub(crate) fn wait(&self) -> bool {
        let mut state = self.state();
        state.arrived += 1;
        self.turn.notify_all();
        while state.arrived < state.expected {
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.errors.is_empty()
    }

    /// Waits for every worker to have bound its ports (started its services' privileged
    /// part); the last to arrive runs `then` (dropping privileges) while the others still
    /// wait, so no worker goes on before it is done. Only workers that passed
    /// [`wait`](Self::wait) with no error call this.
    pub(crate) fn wait_bound(&self, then: impl FnOnce()) {
        let mut state = self.state();
        state.bound += 1;
        if state.bound >= state.expected && !state.after_bound {
            then();
            state.after_bound = true;
            self.turn.notify_all();
        }
        while !state.after_bound {
            state = self
                .turn
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The first worker's error, if any failed.
    pub(crate) fn first_error(&self) -> Option<String> {
        let state = self.state();
        state
            .errors
            .iter()
            .min_by_key(|(i, _)| *i)
            .map(|(_, m)| m.clone())
    }
}
