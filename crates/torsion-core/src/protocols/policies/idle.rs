//! `IdleTimeout`: close a connection after a period of inactivity (Twisted's `TimeoutMixin`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use crate::reactor::{reactor, DelayedCall, ReactorTime};
use crate::transport::Transport;

type Action = Box<dyn FnMut()>;

struct Inner {
    clock: RefCell<Option<Rc<dyn ReactorTime>>>,
    period: Cell<Option<f64>>,
    call: RefCell<Option<DelayedCall>>,
    /// When the last activity was (clock seconds); the timer re-arms from it when it fires.
    last_activity: Cell<f64>,
    transport: RefCell<Option<Transport>>,
    action: RefCell<Option<Action>>,
}

impl Inner {
    fn clock(&self) -> Rc<dyn ReactorTime> {
        self.clock
            .borrow_mut()
            .get_or_insert_with(|| Rc::new(reactor()))
            .clone()
    }

    /// Arms the timer to fire in `seconds`.
    fn arm(self: &Rc<Self>, seconds: f64) {
        let weak: Weak<Inner> = Rc::downgrade(self);
        let call = self.clock().call_later_boxed(
            seconds,
            Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.fired();
                }
            }),
        );
        *self.call.borrow_mut() = Some(call);
    }

    /// The timer is due: time out if the connection has been idle for the whole period,
    /// else wait for the rest of the period since the last activity.
    fn fired(self: &Rc<Self>) {
        self.call.borrow_mut().take();
        let Some(period) = self.period.get() else {
            return;
        };
        let rest = self.last_activity.get() + period - self.clock().seconds();
        if rest > 1e-9 {
            self.arm(rest);
        } else {
            self.timeout_connection();
        }
    }

    fn cancel(&self) {
        if let Some(call) = self.call.borrow_mut().take() {
            let _ = call.cancel();
        }
    }

    fn timeout_connection(&self) {
        let action = self.action.borrow_mut().take();
        match action {
            Some(mut f) => {
                f();
                // Keep it, unless it was replaced while it ran.
                let mut slot = self.action.borrow_mut();
                if slot.is_none() {
                    *slot = Some(f);
                }
            }
            None => {
                let transport = self.transport.borrow().clone();
                if let Some(t) = transport {
                    t.lose_connection();
                }
            }
        }
    }
}

/// An inactivity timer a protocol owns (Twisted's `TimeoutMixin`): after
/// [`set_timeout`](Self::set_timeout)`(Some(seconds))`, if [`reset_timeout`](Self::reset_timeout)
/// is not called for that long, [`timeout_connection`](Self::timeout_connection) runs — by
/// default it closes the transport given with [`set_transport`](Self::set_transport).
///
/// Call `reset_timeout` on activity (data received, data written). The timer is one
/// [`DelayedCall`] on a [`ReactorTime`] (the current reactor unless
/// [`set_clock`](Self::set_clock) says otherwise), moved with [`DelayedCall::reset`] when the
/// period changes; activity only notes the time, and a timer that comes due early waits for
/// the rest of the period. It is cancelled by `set_timeout(None)`, and when the
/// `IdleTimeout` is dropped, so a protocol that owns one never leaves a timer behind. Still,
/// call `set_timeout(None)` in `connection_lost`, as with Twisted.
///
/// ```
/// use torsion::protocols::policies::IdleTimeout;
/// use torsion::{testing::{Clock, StringTransport}, ConnectionEnd, Protocol, Transport};
///
/// struct Chat { idle: IdleTimeout }
///
/// impl Protocol for Chat {
///     fn connection_made(&mut self, t: &Transport) {
///         self.idle.set_transport(t);
///         self.idle.set_timeout(Some(60.0));
///     }
///     fn data_received(&mut self, _t: &Transport, _data: &[u8]) {
///         self.idle.reset_timeout();
///     }
///     fn connection_lost(&mut self, _reason: ConnectionEnd) {
///         self.idle.set_timeout(None);
///     }
/// }
///
/// let clock = Clock::new();
/// let idle = IdleTimeout::new();
/// idle.set_clock(clock.clone());
/// let mut chat = Chat { idle };
/// let st = StringTransport::new();
/// chat.connection_made(&st.transport());
/// clock.advance(59.0);
/// chat.data_received(&st.transport(), b"hi"); // activity: 60 s more
/// clock.advance(59.0);
/// assert!(!st.disconnecting());
/// clock.advance(1.0);
/// assert!(st.disconnecting());
/// ```
pub struct IdleTimeout {
    inner: Rc<Inner>,
}

impl Default for IdleTimeout {
    fn default() -> Self {
        IdleTimeout::new()
    }
}

impl IdleTimeout {
    /// A timer with no period (not armed), on the current reactor.
    pub fn new() -> IdleTimeout {
        IdleTimeout {
            inner: Rc::new(Inner {
                clock: RefCell::new(None),
                period: Cell::new(None),
                call: RefCell::new(None),
                last_activity: Cell::new(0.0),
                transport: RefCell::new(None),
                action: RefCell::new(None),
            }),
        }
    }

    /// Schedules on `clock` (a [`Clock`](crate::testing::Clock) in tests) instead of the
    /// current reactor (Twisted's `TimeoutMixin.callLater`). Takes effect the next time the
    /// timer is armed.
    pub fn set_clock(&self, clock: impl ReactorTime + 'static) {
        self.set_shared_clock(Rc::new(clock));
    }

    /// [`set_clock`](Self::set_clock) with a clock shared by many timers.
    pub(crate) fn set_shared_clock(&self, clock: Rc<dyn ReactorTime>) {
        *self.inner.clock.borrow_mut() = Some(clock);
    }

    /// The transport the default [`timeout_connection`](Self::timeout_connection) closes.
    pub fn set_transport(&self, transport: &Transport) {
        *self.inner.transport.borrow_mut() = Some(transport.clone());
    }

    /// Replaces what happens on time-out (Twisted's overridden `timeoutConnection`). The
    /// function runs from the reactor's timer, outside the protocol's callbacks: give it
    /// what it needs (a transport clone, an `Rc` of shared state).
    pub fn set_timeout_connection(&self, f: impl FnMut() + 'static) {
        *self.inner.action.borrow_mut() = Some(Box::new(f));
    }

    /// Sets the period of inactivity allowed, in seconds, and restarts the timer; `None`
    /// cancels it. Returns the previous period (Twisted's `setTimeout`).
    pub fn set_timeout(&self, period: Option<f64>) -> Option<f64> {
        let old = self.inner.period.replace(period);
        let Some(seconds) = period else {
            self.inner.cancel();
            return old;
        };
        self.inner.last_activity.set(self.inner.clock().seconds());
        let moved = match self.inner.call.borrow().as_ref() {
            Some(call) => call.reset(seconds).is_ok(),
            None => false,
        };
        if !moved {
            self.inner.arm(seconds);
        }
        old
    }

    /// Restarts the period: call it on activity (Twisted's `resetTimeout`). Does nothing when
    /// no timer is pending.
    ///
    /// Only the time is noted (one clock read); the pending call is not moved each time —
    /// when it comes due it waits for the rest of the period since the last activity — so
    /// a busy connection costs the reactor's timers nothing per message.
    pub fn reset_timeout(&self) {
        if self.inner.period.get().is_some() && self.inner.call.borrow().is_some() {
            self.inner.last_activity.set(self.inner.clock().seconds());
        }
    }

    /// The period set, if any (Twisted's `timeOut`).
    pub fn timeout_period(&self) -> Option<f64> {
        self.inner.period.get()
    }

    /// True while the timer is armed and has not fired.
    pub fn is_pending(&self) -> bool {
        self.inner
            .call
            .borrow()
            .as_ref()
            .is_some_and(|c| c.active())
    }

    /// What happens on time-out, run now: the function given to
    /// [`set_timeout_connection`](Self::set_timeout_connection), or else closing the transport
    /// (`lose_connection`), as Twisted's `timeoutConnection`.
    pub fn timeout_connection(&self) {
        self.inner.timeout_connection();
    }
}

impl Drop for IdleTimeout {
    fn drop(&mut self) {
        self.inner.cancel();
    }
}

impl fmt::Debug for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("period", &self.inner.period.get())
            .field("pending", &self.is_pending())
            .finish()
    }
}
