//! The state an IRC connection's command side shares between the protocol and every
//! [`IrcSender`](super::IrcSender): the transport, the nickname, flood control and the
//! heartbeat.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use torsion::reactor::{DelayedCall, ReactorTime};
use torsion::Transport;

use super::message::build_line;

/// Lines waiting for their turn under [`IrcConfig::line_rate`](super::IrcConfig::line_rate).
pub(super) struct Throttle {
    pub(super) rate: f64,
    pub(super) queue: VecDeque<String>,
    /// The call that sends the next queued line; `None` when the last line went out more
    /// than `rate` seconds ago (the next line may go at once).
    pub(super) timer: Option<DelayedCall>,
}

/// What the connection's command side shares between the protocol and every
/// [`IrcSender`](super::IrcSender).
pub(super) struct Shared {
    pub(super) transport: Transport,
    /// The nickname the server knows us by (or the one being tried, before registration).
    pub(super) nickname: RefCell<String>,
    pub(super) registered: Cell<bool>,
    /// The user name, for the room a relayed line leaves.
    pub(super) username: String,
    pub(super) throttle: RefCell<Option<Throttle>>,
    /// The reactor, or a test clock.
    pub(super) clock: Rc<dyn ReactorTime>,
    /// When the last line came from the server.
    pub(super) last_heard: Cell<f64>,
    /// The next heartbeat, once signed on.
    pub(super) heartbeat: RefCell<Option<DelayedCall>>,
}

impl Shared {
    /// Writes one line (without its line ending) at once.
    pub(super) fn write_line(&self, line: &str) {
        self.transport.write_sequence(&[line.as_bytes(), b"\r\n"]);
    }

    /// Builds `COMMAND :trailing` and writes it at once, past flood control (PONG, the
    /// heartbeat's PING, QUIT on a stop), or logs why it cannot.
    pub(super) fn write_now(&self, command: &str, trailing: &str) {
        match build_line(command, &[], Some(trailing)) {
            Ok(line) => self.write_line(&line),
            Err(e) => tracing::warn!(target: "torsion_words::irc", "IRC {command} not sent: {e}"),
        }
    }

    /// Sends the next queued line, if any, and schedules the one after. The queue is not
    /// borrowed while the line is written.
    pub(super) fn send_next(this: &Rc<Shared>) {
        let next = match this.throttle.borrow_mut().as_mut() {
            Some(t) => t.queue.pop_front(),
            None => return,
        };
        let Some(line) = next else {
            if let Some(t) = this.throttle.borrow_mut().as_mut() {
                t.timer = None;
            }
            return;
        };
        this.write_line(&line);
        if let Some(t) = this.throttle.borrow_mut().as_mut() {
            let again = Rc::downgrade(this);
            t.timer = Some(this.clock.call_later_boxed(
                t.rate,
                Box::new(move || {
                    if let Some(this) = again.upgrade() {
                        Shared::send_next(&this);
                    }
                }),
            ));
        }
    }

    /// Drops the queued lines and the timers (the connection is gone).
    pub(super) fn stop(&self) {
        if let Some(mut t) = self.throttle.borrow_mut().take() {
            if let Some(timer) = t.timer.take() {
                let _ = timer.cancel();
            }
        }
        if let Some(timer) = self.heartbeat.borrow_mut().take() {
            let _ = timer.cancel();
        }
    }

    /// Schedules the next heartbeat in `interval` seconds: a PING to `server`, or, when
    /// nothing has come for two intervals, the end of the connection.
    pub(super) fn schedule_heartbeat(this: &Rc<Shared>, interval: f64, server: Rc<str>) {
        let weak = Rc::downgrade(this);
        let call = this.clock.call_later_boxed(
            interval,
            Box::new(move || {
                let Some(this) = weak.upgrade() else {
                    return;
                };
                this.heartbeat.borrow_mut().take();
                let silent = this.clock.seconds() - this.last_heard.get();
                if silent >= 2.0 * interval {
                    tracing::warn!(
                        target: "torsion_words::irc",
                        "nothing from IRC server {server} for {silent:.0} s; closing the connection"
                    );
                    this.transport.lose_connection();
                    return;
                }
                this.write_now("PING", &server);
                Shared::schedule_heartbeat(&this, interval, server);
            }),
        );
        if let Some(old) = this.heartbeat.borrow_mut().replace(call) {
            let _ = old.cancel();
        }
    }
}
