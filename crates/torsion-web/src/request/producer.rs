//! A response body's producer and the connection's flow control (Twisted's
//! `Request.registerProducer`).

use std::rc::Rc;

use torsion::producer::{Producer, ProducerError};

use super::Request;
use crate::body_producer::BodyProducer;

impl Request {
    /// Bytes of this response not yet sent: output held back behind earlier pipelined
    /// responses, plus the connection's write buffer. Producers of long bodies wait while it
    /// is large, so a slow client cannot make the server buffer a whole file.
    pub fn buffered_size(&self) -> usize {
        self.inner.response.borrow().out.len()
            + self
                .inner
                .channel
                .upgrade()
                .map_or(0, |c| c.buffered_size())
    }

    /// Registers the producer of the response body (Twisted's `Request.registerProducer`):
    /// it writes with [`write`](Self::write) and [`finish`](Self::finish)es the request when
    /// done. Flow control is the connection's: a streaming producer is paused while the
    /// connection's write buffer is over its high watermark, a pull producer is asked for
    /// each chunk when the buffer is empty. While the request waits behind earlier pipelined
    /// responses, a pull producer is not asked and a streaming producer is paused. The
    /// producer is unregistered when the request finishes, and stopped if the client leaves
    /// first. Calls to it never come from inside `register_producer` or `write`.
    ///
    /// Fails if a producer is already registered, or the request has finished or lost its
    /// client.
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.finished() || self.lost() {
            return Err(ProducerError::Disconnected);
        }
        if self.inner.producer.borrow().is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        let body = BodyProducer::new(producer, streaming);
        *self.inner.producer.borrow_mut() = Some(body.clone());
        body.hold();
        // Attaches it to the transport now if this request's output goes straight out.
        self.flush();
        Ok(())
    }

    /// Unregisters the body's producer without telling it (Twisted's
    /// `Request.unregisterProducer`). [`finish`](Self::finish) does it too.
    pub fn unregister_producer(&self) {
        self.detach_producer();
    }

    pub(super) fn detach_producer(&self) {
        let producer = self.inner.producer.borrow_mut().take();
        if let Some(p) = producer {
            let t = self.inner.channel.upgrade().and_then(|c| c.transport());
            p.detach(t.as_ref());
        }
    }

    /// This request's turn has come (its output goes straight to `t`): registers its body
    /// producer with the transport.
    pub(crate) fn attach_producer(&self, t: &torsion::Transport) {
        let producer = self.inner.producer.borrow().clone();
        if let Some(p) = producer {
            if !p.attached() {
                if let Err(e) = p.attach(t) {
                    tracing::debug!(target: "torsion_web", "body producer not attached: {e}");
                }
            }
        }
    }

    /// The registered body producer, as the resource gave it (for tests that drive it).
    #[cfg(test)]
    pub(crate) fn producer(&self) -> Option<Rc<dyn Producer>> {
        self.inner
            .producer
            .borrow()
            .as_ref()
            .map(|p| p.inner().clone())
    }
}
