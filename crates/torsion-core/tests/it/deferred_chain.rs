//! The callback chain of a `Deferred`: callbacks and errbacks alternate as in Twisted.

use std::cell::RefCell;
use std::rc::Rc;

use torsion::defer::{fail, succeed, Deferred};
use torsion::error::{ConnectionDone, TimeoutError};
use torsion::Failure;

/// What the callbacks of a test saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

#[test]
fn callback_return_value_goes_to_the_next_callback() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let d = Deferred::<i32>::new();
    let t = d.trigger();
    let end = d
        .add_callback(move |v| {
            s1.borrow_mut().push(format!("first {v}"));
            v * 10
        })
        .add_callback(move |v| {
            s2.borrow_mut().push(format!("second {v}"));
            v + 1
        });
    assert!(seen.borrow().is_empty(), "callbacks ran before firing");
    t.callback(4);
    assert_eq!(entries(&seen), ["first 4", "second 40"]);
    assert_eq!(end.result().unwrap().unwrap(), 41);
}

#[test]
fn failure_skips_callbacks_until_an_errback() {
    let seen = log();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let end = fail::<i32>(TimeoutError)
        .add_callback(move |v| {
            s1.borrow_mut().push("callback 1".into());
            v
        })
        .add_callback(move |v| {
            s2.borrow_mut().push("callback 2".into());
            v
        })
        .add_errback(move |f| {
            s3.borrow_mut()
                .push(format!("errback {}", f.check::<TimeoutError>()));
            Err(f)
        });
    assert_eq!(entries(&seen), ["errback true"]);
    assert!(end.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn errbacks_are_skipped_on_success() {
    let seen = log();
    let s = seen.clone();
    let end = succeed(5).add_errback(move |f| {
        s.borrow_mut().push("errback".into());
        Err(f)
    });
    assert!(seen.borrow().is_empty());
    assert_eq!(end.result().unwrap().unwrap(), 5);
}

#[test]
fn errback_returning_ok_resumes_the_callback_chain() {
    let seen = log();
    let s = seen.clone();
    let end = fail::<i32>(ConnectionDone)
        .add_errback(|f| {
            f.trap::<ConnectionDone>()?;
            Ok(-1)
        })
        .add_callback(move |v| {
            s.borrow_mut().push(format!("callback {v}"));
            v * 2
        });
    assert_eq!(entries(&seen), ["callback -1"]);
    assert_eq!(end.result().unwrap().unwrap(), -2);
}

#[test]
fn errback_returning_err_passes_a_failure_on() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = fail::<i32>(ConnectionDone)
        .add_errback(|_| Err(Failure::new(TimeoutError)))
        .add_callback(move |v| {
            s1.borrow_mut().push("callback".into());
            v
        })
        .add_errback(move |f| {
            s2.borrow_mut()
                .push(format!("errback {}", f.check::<TimeoutError>()));
            Err(f)
        });
    assert_eq!(entries(&seen), ["errback true"]);
    assert!(end.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn add_callbacks_runs_only_the_callback_on_success() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = succeed(3).add_callbacks(
        move |v| {
            s1.borrow_mut().push(format!("callback {v}"));
            v + 1
        },
        move |f| {
            s2.borrow_mut().push("errback".into());
            Err(f)
        },
    );
    assert_eq!(entries(&seen), ["callback 3"]);
    assert_eq!(end.result().unwrap().unwrap(), 4);
}

#[test]
fn add_callbacks_runs_only_the_errback_on_failure() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = fail::<i32>(TimeoutError).add_callbacks(
        move |v| {
            s1.borrow_mut().push("callback".into());
            v
        },
        move |f| {
            s2.borrow_mut()
                .push(format!("errback {}", f.check::<TimeoutError>()));
            Ok(0)
        },
    );
    assert_eq!(entries(&seen), ["errback true"]);
    assert_eq!(end.result().unwrap().unwrap(), 0);
}

#[test]
fn add_callbacks_errback_does_not_see_a_failure_of_its_own_callback() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = succeed(1)
        .add_callbacks(
            |_| -> i32 { panic!("callback broke") },
            move |f| {
                s1.borrow_mut().push("same-level errback".into());
                Err(f)
            },
        )
        .add_errback(move |f| {
            s2.borrow_mut()
                .push(format!("next errback panic={}", f.is_panic()));
            Ok(0)
        });
    assert_eq!(entries(&seen), ["next errback panic=true"]);
    assert_eq!(end.result().unwrap().unwrap(), 0);
}

#[test]
fn add_both_sees_a_value() {
    let seen = log();
    let s = seen.clone();
    let end = succeed(8).add_both(move |out| {
        s.borrow_mut().push(format!("both {:?}", out.as_ref().ok()));
        out
    });
    assert_eq!(entries(&seen), ["both Some(8)"]);
    assert_eq!(end.result().unwrap().unwrap(), 8);
}

#[test]
fn add_both_sees_a_failure() {
    let seen = log();
    let s = seen.clone();
    let end = fail::<i32>(TimeoutError).add_both(move |out| {
        let is_timeout = out
            .as_ref()
            .err()
            .is_some_and(|f| f.check::<TimeoutError>());
        s.borrow_mut().push(format!("both timeout={is_timeout}"));
        out
    });
    assert_eq!(entries(&seen), ["both timeout=true"]);
    assert!(end.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn callback_added_to_an_already_fired_deferred_runs_at_once() {
    let seen = log();
    let s = seen.clone();
    let end = succeed("ready").add_callback(move |v| {
        s.borrow_mut().push(v.to_string());
        v.len()
    });
    assert_eq!(entries(&seen), ["ready"]);
    assert!(end.called());
    assert_eq!(end.result().unwrap().unwrap(), 5);
}

#[test]
fn panic_in_a_callback_becomes_a_failure_for_the_next_errback() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = succeed(1)
        .add_callback(|_| -> i32 { panic!("kaboom {}", 42) })
        .add_callback(move |v| {
            s1.borrow_mut().push("skipped callback".into());
            v
        })
        .add_errback(move |f| {
            s2.borrow_mut().push(format!("{}", f.is_panic()));
            s2.borrow_mut().push(f.error_message());
            Err(f)
        });
    let seen = entries(&seen);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], "true");
    assert!(seen[1].starts_with("panic: kaboom 42"), "{seen:?}");
    assert!(end.result().unwrap().unwrap_err().is_panic());
}

#[test]
fn panic_in_an_errback_becomes_a_failure_for_the_next_errback() {
    let end = fail::<i32>(TimeoutError)
        .add_errback(|_| panic!("errback broke"))
        .add_errback(|f| {
            assert!(f.is_panic(), "expected a panic failure, got {f:?}");
            Ok(7)
        });
    assert_eq!(end.result().unwrap().unwrap(), 7);
}

#[test]
fn add_callback_result_err_goes_to_the_errbacks() {
    let seen = log();
    let (s1, s2) = (seen.clone(), seen.clone());
    let end = succeed("x")
        .add_callback_result(|s| s.parse::<i32>())
        .add_callback(move |v| {
            s1.borrow_mut().push("callback".into());
            v
        })
        .add_errback(move |f| {
            let parse = f.check::<std::num::ParseIntError>();
            s2.borrow_mut().push(format!("errback parse={parse}"));
            Err(f)
        });
    assert_eq!(entries(&seen), ["errback parse=true"]);
    assert!(end.result().unwrap().is_err());
}

#[test]
fn types_flow_from_i32_to_string_to_usize() {
    let d: Deferred<i32> = Deferred::new();
    let t = d.trigger();
    let s: Deferred<String> = d.add_callback(|v: i32| format!("<{v}>"));
    let n: Deferred<usize> = s.add_callback(|s: String| s.len());
    t.callback(12345);
    assert_eq!(n.result().unwrap().unwrap(), 7);
}

// The seed's four error-handling clauses, each with success and failure inputs.

/// The remote call: succeeds with its input, or fails with a `TimeoutError`.
fn get_remote_data(ok: bool) -> Deferred<i32> {
    if ok {
        succeed(10)
    } else {
        fail(TimeoutError)
    }
}

/// try: x = get() except: x = default; continue(x)
fn handle_then_continue(ok: bool, seen: &Log) -> Deferred<i32> {
    let (s1, s2) = (seen.clone(), seen.clone());
    get_remote_data(ok)
        .add_errback(move |f| {
            f.trap::<TimeoutError>()?;
            s1.borrow_mut().push("handled".into());
            Ok(0)
        })
        .add_callback(move |x| {
            s2.borrow_mut().push(format!("continue {x}"));
            x + 1
        })
}

#[test]
fn handle_then_continue_on_success_continues_with_the_value() {
    let seen = log();
    let d = handle_then_continue(true, &seen);
    assert_eq!(entries(&seen), ["continue 10"]);
    assert_eq!(d.result().unwrap().unwrap(), 11);
}

#[test]
fn handle_then_continue_on_failure_handles_then_continues() {
    let seen = log();
    let d = handle_then_continue(false, &seen);
    assert_eq!(entries(&seen), ["handled", "continue 0"]);
    assert_eq!(d.result().unwrap().unwrap(), 1);
}

/// try: x = get() except: handle() else: process(x) — process's failure is not handled here.
fn try_except_else(ok: bool, process_fails: bool, seen: &Log) -> Deferred<i32> {
    let (s1, s2) = (seen.clone(), seen.clone());
    get_remote_data(ok).add_callbacks(
        move |x| {
            s1.borrow_mut().push(format!("else {x}"));
            assert!(!process_fails, "process failed");
            x * 2
        },
        move |f| {
            s2.borrow_mut()
                .push(format!("except {}", f.check::<TimeoutError>()));
            Ok(-1)
        },
    )
}

#[test]
fn try_except_else_on_success_runs_the_else_part() {
    let seen = log();
    let d = try_except_else(true, false, &seen);
    assert_eq!(entries(&seen), ["else 10"]);
    assert_eq!(d.result().unwrap().unwrap(), 20);
}

#[test]
fn try_except_else_on_failure_runs_the_except_part() {
    let seen = log();
    let d = try_except_else(false, false, &seen);
    assert_eq!(entries(&seen), ["except true"]);
    assert_eq!(d.result().unwrap().unwrap(), -1);
}

#[test]
fn try_except_else_does_not_catch_a_failure_of_the_else_part() {
    let seen = log();
    let d = try_except_else(true, true, &seen);
    assert_eq!(entries(&seen), ["else 10"]);
    assert!(d.result().unwrap().unwrap_err().is_panic());
}

/// try: x = get(); y = step1(x); step2(y) except: handle() — one handler for the whole thing.
fn handle_whole_operation(ok: bool, step1_fails: bool, seen: &Log) -> Deferred<String> {
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    get_remote_data(ok)
        .add_callback_result(move |x| {
            s1.borrow_mut().push(format!("step1 {x}"));
            if step1_fails {
                Err(ConnectionDone)
            } else {
                Ok(x + 5)
            }
        })
        .add_callback(move |y| {
            s2.borrow_mut().push(format!("step2 {y}"));
            format!("result {y}")
        })
        .add_errback(move |f| {
            let what = if f.check::<TimeoutError>() {
                "timeout"
            } else if f.check::<ConnectionDone>() {
                "done"
            } else {
                "other"
            };
            s3.borrow_mut().push(format!("handle {what}"));
            Ok("handled".to_string())
        })
}

#[test]
fn handle_for_whole_operation_on_success_runs_every_step() {
    let seen = log();
    let d = handle_whole_operation(true, false, &seen);
    assert_eq!(entries(&seen), ["step1 10", "step2 15"]);
    assert_eq!(d.result().unwrap().unwrap(), "result 15");
}

#[test]
fn handle_for_whole_operation_on_failure_of_the_source_skips_every_step() {
    let seen = log();
    let d = handle_whole_operation(false, false, &seen);
    assert_eq!(entries(&seen), ["handle timeout"]);
    assert_eq!(d.result().unwrap().unwrap(), "handled");
}

#[test]
fn handle_for_whole_operation_catches_a_failure_of_a_middle_step() {
    let seen = log();
    let d = handle_whole_operation(true, true, &seen);
    assert_eq!(entries(&seen), ["step1 10", "handle done"]);
    assert_eq!(d.result().unwrap().unwrap(), "handled");
}

/// try: get() finally: cleanup() — the outcome passes on unchanged.
fn with_finally(ok: bool, seen: &Log) -> Deferred<i32> {
    let s = seen.clone();
    get_remote_data(ok).add_both(move |out| {
        s.borrow_mut().push(format!("finally ok={}", out.is_ok()));
        out
    })
}

#[test]
fn finally_on_success_runs_and_passes_the_value_on() {
    let seen = log();
    let d = with_finally(true, &seen);
    assert_eq!(entries(&seen), ["finally ok=true"]);
    assert_eq!(d.result().unwrap().unwrap(), 10);
}

#[test]
fn finally_on_failure_runs_and_passes_the_failure_on() {
    let seen = log();
    let d = with_finally(false, &seen);
    assert_eq!(entries(&seen), ["finally ok=false"]);
    assert!(d.result().unwrap().unwrap_err().check::<TimeoutError>());
}

#[test]
fn a_long_chain_that_changes_type_and_comes_back_gives_its_last_result() {
    // Longer than the steps a chain keeps in place, with types changing on the way: the
    // first end is in another type than the root's, the second back in the root's.
    let d: Deferred<u64> = Deferred::new();
    let t = d.trigger();
    let mut d = d;
    for _ in 0..12 {
        d = d.add_callback(|x| x + 1);
    }
    let s: Deferred<String> = d.add_callback(|x| format!("{x}!"));
    let mut n: Deferred<u64> = s.add_callback(|s| s.len() as u64 * 100);
    for _ in 0..12 {
        n = n.add_callback(|x| x + 1);
    }
    t.callback(0);
    assert_eq!(n.result().unwrap().unwrap(), 312);
}

#[test]
fn callbacks_added_after_a_run_finished_run_on_its_result_in_any_type() {
    let d: Deferred<u64> = Deferred::new();
    let t = d.trigger();
    let d = d.add_callback(|x| x + 1).add_callback(|x| x * 10);
    t.callback(1);
    assert!(d.called());
    // The run rests in the root's type; this step changes it, the next comes back.
    let d = d.add_callback(|x| format!("{x}"));
    let d = d.add_callback(|s| s.parse::<u64>().unwrap() + 1);
    assert_eq!(d.result().unwrap().unwrap(), 21);
}
