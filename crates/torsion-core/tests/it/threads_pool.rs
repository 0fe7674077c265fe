//! `ThreadPool` on its own, without a reactor: bounded concurrency, the queue limit, idle
//! threads exiting, panics, and stopping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use torsion::threads::{ThreadPool, ThreadPoolError};

/// Waits until `cond` holds, or fails after 5 s.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn runs_work_and_starts_threads_lazily() {
    let pool = ThreadPool::new(0, 4);
    assert_eq!(pool.workers(), 0, "no thread before work");
    let (tx, rx) = mpsc::channel();
    for i in 0..8 {
        let tx = tx.clone();
        pool.call_in_thread(move || tx.send(i).unwrap()).unwrap();
    }
    let mut got: Vec<i32> = (0..8).map(|_| rx.recv().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert!(pool.workers() <= 4);
    pool.stop();
    assert_eq!(pool.workers(), 0);
}

#[test]
fn never_runs_more_than_max_threads_at_once() {
    let pool = ThreadPool::new(0, 2);
    let running = Arc::new(AtomicUsize::new(0));
    let high = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let (running, high, done) = (running.clone(), high.clone(), done.clone());
        pool.call_in_thread(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            high.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert!(pool.workers() <= 2);
    wait_until("all jobs", || done.load(Ordering::SeqCst) == 20);
    assert_eq!(high.load(Ordering::SeqCst), 2);
    pool.stop();
}

#[test]
fn a_full_queue_refuses_work() {
    let pool = ThreadPool::new(0, 1);
    pool.set_queue_limit(2);
    assert_eq!(pool.queue_limit(), 2);
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    pool.call_in_thread(move || gate_rx.recv().unwrap())
        .unwrap();
    wait_until("the first job to start", || pool.busy() == 1);
    pool.call_in_thread(|| {}).unwrap();
    pool.call_in_thread(|| {}).unwrap();
    assert_eq!(pool.queued(), 2);
    let refused = pool.call_in_thread(|| {});
    assert_eq!(refused, Err(ThreadPoolError::QueueFull { limit: 2 }));
    assert!(refused.unwrap_err().to_string().contains("full"));
    gate_tx.send(()).unwrap();
    wait_until("the queue to drain", || {
        pool.queued() == 0 && pool.busy() == 0
    });
    pool.call_in_thread(|| {}).unwrap();
    pool.stop();
}

#[test]
fn idle_threads_above_the_minimum_exit() {
    let pool = ThreadPool::new(1, 3);
    pool.set_idle_timeout(Duration::from_millis(30));
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..6 {
        let done = done.clone();
        pool.call_in_thread(move || {
            thread::sleep(Duration::from_millis(10));
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    wait_until("all jobs", || done.load(Ordering::SeqCst) == 6);
    assert!(pool.workers() > 1, "grew above the minimum");
    wait_until("idle threads to exit", || pool.workers() == 1);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.workers(), 1, "the minimum stays");
    pool.stop();
    assert_eq!(pool.workers(), 0);
}

#[test]
fn a_panicking_job_does_not_kill_the_pool() {
    let pool = ThreadPool::new(1, 1);
    pool.call_in_thread(|| panic!("job failed")).unwrap();
    let (tx, rx) = mpsc::channel();
    pool.call_in_thread(move || {
        tx.send(thread::current().name().map(str::to_owned))
            .unwrap()
    })
    .unwrap();
    let name = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(name.starts_with("torsion-worker-"), "{name}");
    assert_eq!(pool.workers(), 1);
    pool.stop();
}

#[test]
fn stop_finishes_running_jobs_drops_queued_ones_and_refuses_more() {
    let pool = ThreadPool::new(0, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let r = ran.clone();
    pool.call_in_thread(move || {
        started_tx.send(()).unwrap();
        thread::sleep(Duration::from_millis(50));
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let r = ran.clone();
    pool.call_in_thread(move || {
        r.fetch_add(10, Ordering::SeqCst);
    })
    .unwrap();
    started_rx.recv().unwrap();
    pool.stop();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the running job finished; the queued one was dropped"
    );
    assert!(pool.is_stopped());
    assert_eq!(pool.workers(), 0);
    assert_eq!(
        pool.call_in_thread(|| {}),
        Err(ThreadPoolError::PoolStopped)
    );
    pool.stop(); // again: nothing
}

#[test]
fn adjust_pool_size_changes_the_limits() {
    let pool = ThreadPool::new(0, 10);
    pool.adjust_pool_size(2, 3);
    assert_eq!((pool.min_threads(), pool.max_threads()), (2, 3));
    pool.adjust_pool_size(5, 1);
    assert_eq!((pool.min_threads(), pool.max_threads()), (5, 5));
    assert!(format!("{pool:?}").contains("ThreadPool"));
    pool.stop();
}
