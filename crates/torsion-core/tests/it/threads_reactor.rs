//! `torsion::threads` with a reactor: `defer_to_thread`, the reactor's default pool and its
//! size, `call_multiple_in_thread`, `blocking_call_from_thread`, responsiveness while threads
//! work, and the pool stopping at reactor shutdown.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use torsion::defer::{fail, gather_results, Deferred};
use torsion::error::TimeoutError;
use torsion::task::LoopingCall;
use torsion::threads::{
    blocking_call_deferred_from_thread, blocking_call_from_thread, call_from_thread,
    call_in_thread, call_multiple_in_thread, defer_to_thread, get_thread_pool,
    suggest_thread_pool_size, ThreadPoolError,
};
use torsion::{reactor, Failure, Reactor};

#[torsion::test(timeout = 10)]
async fn defer_to_thread_returns_the_value_from_another_thread() -> Result<(), Failure> {
    let me = thread::current().id();
    let (value, there) = defer_to_thread(|| (6 * 7, thread::current().id())).await?;
    assert_eq!(value, 42);
    assert_ne!(there, me, "ran in a worker thread");
    assert_eq!(
        thread::current().id(),
        me,
        "the result arrives on the reactor thread"
    );
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_panic_in_the_thread_becomes_a_failure() {
    let failure = defer_to_thread(|| -> u32 { panic!("no luck") })
        .await
        .unwrap_err();
    assert!(failure.is_panic());
    assert!(failure.error_message().contains("no luck"));
}

#[torsion::test(timeout = 20)]
async fn suggest_thread_pool_size_bounds_concurrency() -> Result<(), Failure> {
    suggest_thread_pool_size(2);
    assert_eq!(get_thread_pool().max_threads(), 2);
    let running = Arc::new(AtomicUsize::new(0));
    let high = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<Deferred<usize>> = (0..30)
        .map(|i| {
            let (running, high) = (running.clone(), high.clone());
            defer_to_thread(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                high.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(3));
                running.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let results = gather_results(jobs).await?;
    assert_eq!(results, (0..30).collect::<Vec<_>>());
    assert_eq!(high.load(Ordering::SeqCst), 2);
    assert!(get_thread_pool().workers() <= 2);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_full_queue_fails_the_deferred_with_queue_full() -> Result<(), Failure> {
    let pool = get_thread_pool();
    suggest_thread_pool_size(1);
    pool.set_queue_limit(1);
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let first = defer_to_thread(move || gate_rx.recv().is_ok());
    while pool.busy() == 0 {
        thread::sleep(Duration::from_millis(1));
    }
    let second = defer_to_thread(|| 2);
    let refused = defer_to_thread(|| 3).await.unwrap_err();
    assert_eq!(
        refused.downcast_ref::<ThreadPoolError>(),
        Some(&ThreadPoolError::QueueFull { limit: 1 })
    );
    assert_eq!(
        call_in_thread(|| {}),
        Err(ThreadPoolError::QueueFull { limit: 1 })
    );
    gate_tx.send(()).unwrap();
    assert!(first.await?);
    assert_eq!(second.await?, 2);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn call_multiple_in_thread_runs_in_order_on_one_thread() -> Result<(), Failure> {
    let (tx, rx) = mpsc::channel();
    let fs: Vec<Box<dyn FnOnce() + Send>> = (0..5)
        .map(|i| {
            let tx = tx.clone();
            Box::new(move || tx.send((i, thread::current().id())).unwrap())
                as Box<dyn FnOnce() + Send>
        })
        .collect();
    drop(tx);
    call_multiple_in_thread(fs)?;
    let seen = defer_to_thread(move || rx.iter().collect::<Vec<_>>()).await?;
    let order: Vec<i32> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
    assert!(seen.iter().all(|(_, t)| *t == seen[0].1), "one thread");
    assert_ne!(seen[0].1, thread::current().id());
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn call_from_thread_runs_on_the_reactor_thread() -> Result<(), Failure> {
    let me = thread::current().id();
    let (tx, rx) = mpsc::channel();
    assert!(call_from_thread(move || tx
        .send(thread::current().id())
        .unwrap()));
    let there = defer_to_thread(move || rx.recv().unwrap()).await?;
    assert_eq!(there, me);
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn blocking_call_from_thread_gets_a_value() -> Result<(), Failure> {
    let handle = reactor().handle();
    let reactor_thread = thread::current().id();
    let got = defer_to_thread(move || {
        blocking_call_from_thread(&handle, move || {
            (
                reactor().running(),
                thread::current().id() == reactor_thread,
            )
        })
    })
    .await??;
    assert_eq!(got, (true, true));
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn blocking_call_from_thread_gets_a_failure() -> Result<(), Failure> {
    let handle = reactor().handle();
    let h2 = handle.clone();
    let (panicked, failed) = defer_to_thread(move || {
        let panicked = blocking_call_from_thread(&handle, || -> u8 { panic!("on the reactor") });
        let failed = blocking_call_deferred_from_thread(&h2, || fail::<u8>(TimeoutError));
        (panicked, failed)
    })
    .await?;
    let panicked = panicked.unwrap_err();
    assert!(panicked.is_panic());
    assert!(panicked.error_message().contains("on the reactor"));
    assert!(failed.unwrap_err().check::<TimeoutError>());
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn blocking_call_from_thread_waits_for_a_deferred_fired_later() -> Result<(), Failure> {
    let handle = reactor().handle();
    let got = defer_to_thread(move || {
        blocking_call_deferred_from_thread(&handle, || {
            let d = Deferred::new();
            let fire = d.trigger();
            reactor().call_later(0.05, move || fire.callback("later"));
            d
        })
    })
    .await??;
    assert_eq!(got, "later");
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn blocking_call_from_thread_on_the_reactor_thread_errors() {
    let handle = reactor().handle();
    let err = blocking_call_from_thread(&handle, || 1).unwrap_err();
    assert_eq!(
        err.downcast_ref::<ThreadPoolError>(),
        Some(&ThreadPoolError::CalledFromReactorThread)
    );
    let err = blocking_call_deferred_from_thread(&handle, || torsion::defer::succeed(1));
    assert!(err.unwrap_err().check::<ThreadPoolError>());
}

#[torsion::test(timeout = 10)]
async fn the_reactor_stays_responsive_while_a_thread_works() -> Result<(), Failure> {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let lc = LoopingCall::new(move || t.set(t.get() + 1));
    let done = lc.start(0.02, true);
    let slept = defer_to_thread(|| {
        thread::sleep(Duration::from_millis(200));
        "slept"
    })
    .await?;
    lc.stop();
    done.await?;
    assert_eq!(slept, "slept");
    assert!(
        ticks.get() >= 5,
        "only {} ticks while the thread slept",
        ticks.get()
    );
    Ok(())
}

#[test]
fn the_default_pool_is_stopped_at_reactor_shutdown() {
    thread::spawn(|| {
        let r = Reactor::new();
        r.set_install_signal_handlers(false);
        let pool = get_thread_pool();
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        // A job still running at shutdown is waited for.
        pool.call_in_thread(|| thread::sleep(Duration::from_millis(50)))
            .unwrap();
        r.call_when_running(move || {
            defer_to_thread(|| 5).add_both(move |v| {
                s.set(v?);
                reactor().stop()
            })
        });
        r.run().unwrap();
        assert_eq!(seen.get(), 5);
        assert!(pool.is_stopped());
        assert_eq!(pool.workers(), 0, "no worker thread left");
        // The next reactor on this thread gets a fresh pool.
        let _r2 = Reactor::new();
        let fresh = get_thread_pool();
        assert!(!fresh.is_stopped());
        fresh.stop();
    })
    .join()
    .unwrap();
}
