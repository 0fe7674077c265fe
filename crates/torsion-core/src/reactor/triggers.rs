//! System event triggers: code that runs at startup and shutdown (Twisted's
//! `addSystemEventTrigger`).

use crate::defer::Deferred;

/// A system event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The reactor starts running.
    Startup,
    /// The reactor stops.
    Shutdown,
    /// An event of your own, by name, fired by
    /// [`Reactor::fire_system_event`](super::Reactor::fire_system_event) (Twisted's custom
    /// event types such as `"persist"`). `Custom("startup")` and `Custom("shutdown")` are
    /// events of their own, not the reactor's: [`run`](super::Reactor::run) and
    /// [`stop`](super::Reactor::stop) fire those.
    Custom(&'static str),
}

/// When, around an event, a trigger runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the event; returned Deferreds are waited for.
    Before,
    /// During the event (the reactor closes its ports and connections here at shutdown).
    During,
    /// After the event.
    After,
}

/// Identifies a trigger, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerId(u64);

/// What a scheduled call, trigger, looping call or cooperative step may return: nothing, a
/// `Result` (an error is a failure: logged, or reported to whoever waits), or a Deferred to
/// wait for.
///
/// Anything else is refused at compile time, where Twisted would drop the value silently:
///
/// ```compile_fail,E0277
/// use torsion::testing::Clock;
///
/// let clock = Clock::new();
/// clock.call_later(1.0, || 42); // error[E0277]: a scheduled call cannot return `{integer}`
/// ```
#[diagnostic::on_unimplemented(
    message = "a scheduled call cannot return `{Self}`",
    label = "the closure given here returns `{Self}`",
    note = "scheduled calls, system event triggers, looping calls and cooperative steps return \
            `()`, a `Result<(), E>` (an error is a failure) or a `Deferred` (waited for)",
    note = "to drop a value, end the closure with `;`, or map it: `d.add_callback(|_| ())`"
)]
pub trait CallOutcome {
    /// The Deferred to wait for, if any.
    fn into_wait(self) -> Option<Deferred<()>>;
}

impl CallOutcome for () {
    fn into_wait(self) -> Option<Deferred<()>> {
        None
    }
}

impl<T: 'static> CallOutcome for Deferred<T> {
    fn into_wait(self) -> Option<Deferred<()>> {
        Some(self.add_callback(|_| ()))
    }
}

impl<E: Into<crate::Failure>> CallOutcome for Result<(), E> {
    fn into_wait(self) -> Option<Deferred<()>> {
        match self {
            Ok(()) => None,
            Err(e) => Some(crate::defer::fail(e)),
        }
    }
}

type TriggerFn = Box<dyn FnOnce() -> Option<Deferred<()>>>;

#[derive(Default)]
pub(crate) struct Triggers {
    next: u64,
    list: Vec<(TriggerId, Phase, Event, TriggerFn)>,
    started: bool,
}

impl Triggers {
    pub(crate) fn add(&mut self, phase: Phase, event: Event, f: TriggerFn) -> TriggerId {
        self.next += 1;
        let id = TriggerId(self.next);
        self.list.push((id, phase, event, f));
        id
    }

    pub(crate) fn remove(&mut self, id: TriggerId) -> bool {
        let before = self.list.len();
        self.list.retain(|t| t.0 != id);
        self.list.len() != before
    }

    /// Takes the next trigger of one phase of one event, in the order they were added. One at
    /// a time, as Twisted pops them: a trigger may add another to its own phase (which then
    /// runs too) or remove a later one (which then does not).
    pub(crate) fn next(&mut self, phase: Phase, event: Event) -> Option<TriggerFn> {
        if event == Event::Startup && phase == Phase::After {
            self.started = true;
        }
        let at = self
            .list
            .iter()
            .position(|t| t.1 == phase && t.2 == event)?;
        Some(self.list.remove(at).3)
    }

    /// True once the startup event has reached its last phase.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
}
