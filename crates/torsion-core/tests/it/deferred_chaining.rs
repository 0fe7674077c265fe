//! Chaining Deferreds: a callback returning a Deferred pauses the chain until it fires, and long
//! chains neither overflow the stack nor lose Twisted's synchronous firing.

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred, Trigger};
use torsion::error::{ConnectionDone, TimeoutError};

/// What the callbacks of a test saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

/// Runs `body` in a child process (this test binary, running only the test `name`), so that a
/// stack overflow, which aborts the whole process, fails this one test clearly instead of
/// killing every test of the binary.
fn in_child_process(name: &str, body: impl FnOnce()) {
    const VAR: &str = "TORSION_DEFERRED_CHAINING_CHILD";
    if std::env::var(VAR).as_deref() == Ok(name) {
        body();
        return;
    }
    // The test's full name in this binary: its module path without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let full_name = format!("{module}::{name}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([&*full_name, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, name)
        .output()
        .expect("cannot re-run the test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed in its child process ({}):\n{stderr}\n{stdout}",
        out.status
    );
}

#[test]
fn callback_returning_a_deferred_pauses_the_chain_until_it_fires() {
    let seen = log();
    let s = seen.clone();
    let inner = Deferred::<String>::new();
    let fire_inner = inner.trigger();
    let end = succeed(2)
        .add_callback_deferred(move |_| inner)
        .add_callback(move |v| {
            s.borrow_mut().push(v.clone());
            v.len()
        });
    assert!(seen.borrow().is_empty(), "chain did not pause");
    assert!(!end.called());
    fire_inner.callback("inner value".into());
    assert_eq!(entries(&seen), ["inner value"]);
    assert_eq!(end.result().unwrap().unwrap(), 11);
}

#[test]
fn the_paused_chain_continues_with_the_inner_failure() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let inner = Deferred::<i32>::new();
    let fire_inner = inner.trigger();
    let end = succeed(())
        .add_callback_deferred(move |_| inner)
        .add_callback(move |v| {
            s1.borrow_mut().push("callback".into());
            v
        })
        .add_errback(move |f| {
            s2.borrow_mut()
                .push(format!("errback {}", f.check::<ConnectionDone>()));
            Err(f)
        });
    assert!(seen.borrow().is_empty());
    fire_inner.errback(ConnectionDone);
    assert_eq!(entries(&seen), ["errback true"]);
    assert!(end.result().unwrap().unwrap_err().check::<ConnectionDone>());
}

#[test]
fn the_inner_deferred_gets_the_outer_value() {
    let end = succeed(20).add_callback_deferred(|v| succeed(v + 22));
    assert_eq!(end.result().unwrap().unwrap(), 42);
}

#[test]
fn a_failure_skips_add_callback_deferred() {
    let seen = log();
    let s = seen.clone();
    let end = fail::<i32>(TimeoutError).add_callback_deferred(move |v| {
        s.borrow_mut().push("called".into());
        succeed(v)
    });
    assert!(seen.borrow().is_empty());
    assert!(end.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn the_outer_chain_waits_for_an_inner_chain_that_itself_waits() {
    let leaf = Deferred::<i32>::new();
    let fire_leaf = leaf.trigger();
    let middle_root = Deferred::<()>::new();
    let fire_middle = middle_root.trigger();
    let middle = middle_root
        .add_callback_deferred(move |_| leaf)
        .add_callback(|v| v * 2);
    let end = succeed(())
        .add_callback_deferred(move |_| middle)
        .add_callback(|v| v + 1);
    fire_middle.callback(());
    assert!(!end.called(), "fired before the leaf");
    fire_leaf.callback(10);
    assert_eq!(end.result().unwrap().unwrap(), 21);
}

#[test]
fn nested_several_levels_deep_unwinds_in_order() {
    fn level(n: u32, seen: Log, leaf: Deferred<u32>) -> Deferred<u32> {
        if n == 0 {
            return leaf;
        }
        let s = seen.clone();
        succeed(n).add_callback_deferred(move |n| {
            level(n - 1, seen, leaf).add_callback(move |v| {
                s.borrow_mut().push(format!("level {n}"));
                v + n
            })
        })
    }
    let seen = log();
    let leaf = Deferred::new();
    let fire_leaf = leaf.trigger();
    let end = level(5, seen.clone(), leaf);
    assert!(seen.borrow().is_empty());
    fire_leaf.callback(100);
    assert_eq!(
        entries(&seen),
        ["level 1", "level 2", "level 3", "level 4", "level 5"]
    );
    assert_eq!(end.result().unwrap().unwrap(), 115);
}

#[test]
fn a_100_000_callback_chain_fired_late_does_not_overflow_the_stack() {
    in_child_process(
        "a_100_000_callback_chain_fired_late_does_not_overflow_the_stack",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..100_000 {
                d = d.add_callback(|v| v + 1);
            }
            fire.callback(0);
            assert_eq!(d.result().unwrap().unwrap(), 100_000);
        },
    );
}

#[test]
fn a_100_000_callback_chain_changing_type_at_every_step_does_not_overflow_the_stack() {
    // Each change of type runs the rest of the chain one level deeper (a run of one type is a
    // loop): 100,000 changes must move to fresh stack segments as they go.
    in_child_process(
        "a_100_000_callback_chain_changing_type_at_every_step_does_not_overflow_the_stack",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..50_000 {
                d = d
                    .add_callback(|v| i64::try_from(v).unwrap() + 1)
                    .add_callback(|v| u64::try_from(v).unwrap() + 1);
            }
            fire.callback(0);
            assert_eq!(d.result().unwrap().unwrap(), 100_000);
        },
    );
}

#[test]
fn a_100_000_callback_chain_carries_a_failure_to_its_end() {
    in_child_process(
        "a_100_000_callback_chain_carries_a_failure_to_its_end",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..100_000 {
                d = d.add_callback(|v| v + 1);
            }
            let d = d.add_errback(|f| {
                f.trap::<TimeoutError>()?;
                Ok(7)
            });
            fire.errback(TimeoutError);
            assert_eq!(d.result().unwrap().unwrap(), 7);
        },
    );
}

#[test]
fn ten_thousand_add_callback_deferred_with_fired_inner_deferreds_do_not_overflow() {
    in_child_process(
        "ten_thousand_add_callback_deferred_with_fired_inner_deferreds_do_not_overflow",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..10_000 {
                d = d.add_callback_deferred(|v| succeed(v + 1));
            }
            fire.callback(0);
            assert_eq!(d.result().unwrap().unwrap(), 10_000);
        },
    );
}

#[test]
fn ten_thousand_nested_waiting_deferreds_fired_from_the_innermost_do_not_overflow() {
    // Twisted's test_boundedStackDepth: each Deferred's callback returns the next one.
    in_child_process(
        "ten_thousand_nested_waiting_deferreds_fired_from_the_innermost_do_not_overflow",
        || {
            let last = Deferred::<u64>::new();
            let fire_last = last.trigger();
            let mut next = last;
            let mut triggers: Vec<Trigger<()>> = Vec::new();
            for _ in 0..10_000 {
                let d = Deferred::<()>::new();
                triggers.push(d.trigger());
                let inner = next;
                next = d
                    .add_callback_deferred(move |_| inner)
                    .add_callback(|v| v + 1);
            }
            let end = next;
            for t in triggers.into_iter().rev() {
                t.callback(());
            }
            assert!(!end.called());
            fire_last.callback(0);
            assert_eq!(end.result().unwrap().unwrap(), 10_000);
        },
    );
}

#[test]
fn dropping_an_unfired_100_000_callback_chain_does_not_overflow_the_stack() {
    // In Twisted a Deferred that never fires is simply garbage-collected.
    in_child_process(
        "dropping_an_unfired_100_000_callback_chain_does_not_overflow_the_stack",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..100_000 {
                d = d.add_callback(|v| v + 1);
            }
            drop(d);
            drop(fire);
        },
    );
}

#[test]
fn cancelling_the_end_of_a_100_000_callback_chain_does_not_overflow_the_stack() {
    in_child_process(
        "cancelling_the_end_of_a_100_000_callback_chain_does_not_overflow_the_stack",
        || {
            let root = Deferred::<u64>::new();
            let fire = root.trigger();
            let mut d = root;
            for _ in 0..100_000 {
                d = d.add_callback(|v| v + 1);
            }
            d.cancel();
            let failure = d.result().unwrap().unwrap_err();
            assert!(failure.check::<torsion::error::CancelledError>());
            drop(fire);
        },
    );
}

#[test]
fn firing_a_deferred_inside_any_callback_of_a_long_chain_runs_its_callbacks_at_once() {
    // Twisted runs a Deferred's callbacks before `callback()` returns, however deep the caller.
    for position in 0..200 {
        let root = Deferred::<u32>::new();
        let fire = root.trigger();
        let mut d = root;
        for _ in 0..position {
            d = d.add_callback(|v| v + 1);
        }
        let synchronous = Rc::new(RefCell::new(None));
        let sync = synchronous.clone();
        let end = d.add_callback(move |v| {
            let other = Deferred::<u32>::new();
            let fire_other = other.trigger();
            let doubled = other.add_callback(|x| x * 2);
            fire_other.callback(21);
            *sync.borrow_mut() = Some(doubled.result().map(|r| r.unwrap()));
            v
        });
        fire.callback(0);
        assert_eq!(end.result().unwrap().unwrap(), position);
        assert_eq!(
            *synchronous.borrow(),
            Some(Some(42)),
            "a Deferred fired from callback #{position} had not run its callbacks when \
             callback() returned"
        );
    }
}

#[test]
fn callbacks_added_before_firing_keep_their_order_around_a_pausing_callback() {
    let seen = log();
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let inner: Deferred<i32> = Deferred::new();
    let inner_trigger = inner.trigger();
    let mut inner = Some(inner);
    let d: Deferred<i32> = Deferred::new();
    let t = d.trigger();
    let d = d
        .add_callback(move |x| {
            s1.borrow_mut().push(format!("a{x}"));
            x + 1
        })
        .add_errback(Err)
        .add_callback_deferred(move |x| {
            s2.borrow_mut().push(format!("pause{x}"));
            inner.take().unwrap().add_callback(move |y| x + y)
        })
        .add_callback(move |x| {
            s3.borrow_mut().push(format!("b{x}"));
            x * 10
        })
        .add_both(move |out| {
            s4.borrow_mut().push(format!("both{out:?}"));
            out
        });
    assert!(!d.called());
    t.callback(1);
    assert_eq!(entries(&seen), ["a1", "pause2"]);
    assert!(!d.called());
    inner_trigger.callback(5);
    assert_eq!(entries(&seen), ["a1", "pause2", "b7", "bothOk(70)"]);
    assert!(d.called());
    assert_eq!(d.result().unwrap().unwrap(), 70);
}

#[test]
fn callbacks_added_after_the_result_rests_run_at_once_and_result_can_be_awaited_later() {
    let d: Deferred<i32> = Deferred::new();
    let t = d.trigger();
    let d = d.add_callback(|x| x + 1).add_callback(|x| x + 1);
    t.callback(1);
    assert!(d.called());
    // The chain has run; these run now, on the resting result.
    let d = d.add_callback(|x| x * 3).add_errback(|_| Ok(-1));
    assert!(d.called());
    let d = d.add_callback_deferred(|x| succeed(x + 1));
    assert_eq!(d.result().unwrap().unwrap(), 10);
}

#[test]
fn cancelling_callbacks_added_before_firing_cancels_the_root_and_errbacks_see_it() {
    use torsion::error::CancelledError;
    let cancelled = Rc::new(RefCell::new(false));
    let c = cancelled.clone();
    let d: Deferred<i32> = Deferred::with_canceller(move |_| *c.borrow_mut() = true);
    let d = d
        .add_callback(|x| x + 1)
        .add_errback(|f| {
            assert!(f.check::<CancelledError>());
            Ok(-1)
        })
        .add_callback(|x| x * 2);
    d.cancel();
    assert!(*cancelled.borrow());
    assert_eq!(d.result().unwrap().unwrap(), -2);
}
