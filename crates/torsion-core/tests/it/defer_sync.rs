//! DeferredLock, DeferredSemaphore and DeferredQueue.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{
    CancelledError, Deferred, DeferredLock, DeferredQueue, DeferredSemaphore, QueueOverflow,
    QueueUnderflow, Trigger,
};

#[test]
fn a_semaphore_runs_at_most_n_jobs_and_serves_waiters_in_order() {
    let sem = DeferredSemaphore::new(2);
    let gates: Rc<RefCell<Vec<Trigger<usize>>>> = Rc::default();
    let started = Rc::new(RefCell::new(Vec::new()));
    let mut results = Vec::new();
    for i in 0..4 {
        let (g, s) = (gates.clone(), started.clone());
        results.push(sem.run(move || {
            s.borrow_mut().push(i);
            let d = Deferred::new();
            g.borrow_mut().push(d.trigger());
            d
        }));
    }
    assert_eq!(*started.borrow(), [0, 1]);
    assert_eq!(sem.tokens(), 0);
    let first = gates.borrow_mut().remove(0);
    first.callback(10);
    assert_eq!(*started.borrow(), [0, 1, 2]);
    assert_eq!(results[0].result().unwrap().unwrap(), 10);
    let running = std::mem::take(&mut *gates.borrow_mut());
    for t in running {
        t.callback(0);
    }
    let last = gates.borrow_mut().pop().unwrap();
    last.callback(3);
    assert_eq!(*started.borrow(), [0, 1, 2, 3]);
    assert_eq!(sem.tokens(), 2);
}

#[test]
fn a_failed_job_releases_its_token() {
    let sem = DeferredSemaphore::new(1);
    let d = sem.run(|| torsion::defer::fail::<()>(std::io::Error::other("x")));
    assert!(d.result().unwrap().is_err());
    assert_eq!(sem.tokens(), 1);
}

#[test]
fn a_cancelled_waiter_gives_up_its_place() {
    let lock = DeferredLock::new();
    let held = lock.acquire();
    assert!(held.called() && lock.locked());
    let w1 = lock.acquire();
    let w2 = lock.acquire();
    w1.cancel();
    assert!(w1.result().unwrap().unwrap_err().check::<CancelledError>());
    lock.release();
    assert!(w2.called(), "the lock went to the next live waiter");
    lock.release();
    assert!(!lock.locked());
}

#[test]
#[should_panic(expected = "without a matching acquire")]
fn releasing_too_often_is_a_clear_error() {
    let lock = DeferredLock::new();
    lock.release();
}

#[test]
fn a_queue_hands_items_to_waiting_readers_in_order() {
    let q = DeferredQueue::new();
    let a = q.get().unwrap();
    let b = q.get().unwrap();
    assert_eq!(q.waiting(), 2);
    q.put("x").unwrap();
    q.put("y").unwrap();
    q.put("z").unwrap();
    assert_eq!(a.result().unwrap().unwrap(), "x");
    assert_eq!(b.result().unwrap().unwrap(), "y");
    assert_eq!(q.len(), 1);
    assert_eq!(q.get().unwrap().result().unwrap().unwrap(), "z");
}

#[test]
fn queue_limits_refuse_instead_of_growing() {
    let q = DeferredQueue::with_limits(Some(2), Some(1));
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.put(3), Err(QueueOverflow));
    let q: DeferredQueue<i32> = DeferredQueue::with_limits(Some(2), Some(1));
    let _waiting = q.get().unwrap();
    assert_eq!(q.get().unwrap_err(), QueueUnderflow);
}

#[test]
fn a_cancelled_get_does_not_swallow_an_item() {
    let q = DeferredQueue::new();
    let gone = q.get().unwrap();
    gone.cancel();
    let live = q.get().unwrap();
    q.put(5).unwrap();
    assert_eq!(live.result().unwrap().unwrap(), 5);
    assert!(gone.result().unwrap().is_err());
}
