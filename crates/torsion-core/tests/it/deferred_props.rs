//! Chains built at random, fired at random points, against a plain interpreter of Twisted's
//! callback rules: whatever mix of fused runs, nodes and already-fired ends a chain goes
//! through, its callbacks see the same values in the same order and it ends with the same
//! outcome.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use torsion::defer::{succeed, Deferred, Trigger};
use torsion::error::TimeoutError;
use torsion::Failure;

/// One step added to the chain.
#[derive(Debug, Clone)]
enum Op {
    /// `add_callback(|x| x + n)`.
    Add(i64),
    /// `add_callback_result`: fails when the value is above the threshold.
    FailAbove(i64),
    /// `add_errback` recovering with the value.
    Recover(i64),
    /// `add_both`, passing the outcome on.
    Both,
    /// `add_callbacks(|x| x * 2, |_| Ok(v))`.
    Callbacks(i64),
    /// `add_callback_deferred` returning an already-fired Deferred (`x - 1`).
    ChainFired,
    /// `add_callback_deferred` returning a Deferred fired later (`x + 100`).
    ChainLater,
    /// Look at the chain's end (`called()` and `Debug`), which may turn a run into a node.
    Peek,
}

/// Where the chain starts from.
#[derive(Debug, Clone)]
enum Start {
    /// `Deferred::new()`, fired with this value (or failed) after `fire_at` steps.
    Pending { value: Option<i64>, fire_at: usize },
    /// `succeed(value)`.
    Succeeded(i64),
    /// `Deferred::new()`, cancelled through the chain's end after `at` steps; firing it
    /// afterwards is ignored.
    Cancelled { at: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (-5i64..5).prop_map(Op::Add),
        (-10i64..10).prop_map(Op::FailAbove),
        (-5i64..5).prop_map(Op::Recover),
        Just(Op::Both),
        (-5i64..5).prop_map(Op::Callbacks),
        Just(Op::ChainFired),
        Just(Op::ChainLater),
        Just(Op::Peek),
    ]
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        (proptest::option::of(-5i64..5), 0usize..25)
            .prop_map(|(value, fire_at)| Start::Pending { value, fire_at }),
        (-5i64..5).prop_map(Start::Succeeded),
        (0usize..25).prop_map(|at| Start::Cancelled { at }),
    ]
}

/// Triggers of Deferreds returned by `ChainLater` steps, with the value to fire each with.
type Later = Rc<RefCell<Vec<(Trigger<i64>, i64)>>>;

/// The chain's own trigger, the value to fire it with (`None`: a failure), and after how many
/// steps.
type Firing = Option<(Trigger<i64>, Option<i64>, usize)>;

/// What the reference interpreter and the real chain report: every value a callback saw,
/// and the end (`Ok(v)` or `Err(())` for a failure).
type Trace = (Vec<String>, Result<i64, ()>);

/// Twisted's rules, run by hand on the whole chain at once.
fn model(start: &Start, ops: &[Op]) -> Trace {
    let mut seen = Vec::new();
    let mut out: Result<i64, ()> = match start {
        Start::Pending { value: Some(v), .. } | Start::Succeeded(v) => Ok(*v),
        Start::Pending { value: None, .. } | Start::Cancelled { .. } => Err(()),
    };
    for op in ops {
        out = match (op, out) {
            (Op::Add(n), Ok(x)) => {
                seen.push(format!("add {x}"));
                Ok(x + n)
            }
            (Op::FailAbove(t), Ok(x)) => {
                seen.push(format!("fail? {x}"));
                if x > *t {
                    Err(())
                } else {
                    Ok(x)
                }
            }
            (Op::Recover(v), Err(())) => {
                seen.push("recover".into());
                Ok(*v)
            }
            (Op::Both, o) => {
                seen.push(format!("both {o:?}"));
                o
            }
            (Op::Callbacks(_), Ok(x)) => {
                seen.push(format!("cb {x}"));
                Ok(x * 2)
            }
            (Op::Callbacks(v), Err(())) => {
                seen.push("eb".into());
                Ok(*v)
            }
            (Op::ChainFired, Ok(x)) => {
                seen.push(format!("chain {x}"));
                Ok(x - 1)
            }
            (Op::ChainLater, Ok(x)) => {
                seen.push(format!("later {x}"));
                Ok(x + 100)
            }
            (_, o) => o,
        };
    }
    (seen, out)
}

/// Builds the chain with Torsion, fires it where `start` says, and reports what happened.
fn real(start: &Start, ops: &[Op]) -> Trace {
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    // Deferreds that `ChainLater` steps wait on, fired once everything is built and fired.
    let later: Later = Rc::default();
    let (mut d, mut trigger): (Deferred<i64>, Firing) = match start {
        Start::Pending { value, fire_at } => {
            let d = Deferred::new();
            let t = d.trigger();
            (d, Some((t, *value, *fire_at)))
        }
        Start::Succeeded(v) => (succeed(*v), None),
        Start::Cancelled { .. } => {
            let d = Deferred::new();
            let t = d.trigger();
            (d, Some((t, Some(1), usize::MAX)))
        }
    };
    let cancel_at = match start {
        Start::Cancelled { at } => Some((*at).min(ops.len())),
        _ => None,
    };
    for (i, op) in ops.iter().enumerate() {
        if cancel_at == Some(i) {
            d.cancel();
        }
        if trigger.as_ref().is_some_and(|(_, _, at)| *at == i) {
            let (t, value, _) = trigger.take().unwrap();
            fire(t, value);
        }
        let s = seen.clone();
        d = match op.clone() {
            Op::Add(n) => d.add_callback(move |x| {
                s.borrow_mut().push(format!("add {x}"));
                x + n
            }),
            Op::FailAbove(t) => d.add_callback_result(move |x| {
                s.borrow_mut().push(format!("fail? {x}"));
                if x > t {
                    Err(TimeoutError)
                } else {
                    Ok(x)
                }
            }),
            Op::Recover(v) => d.add_errback(move |_| {
                s.borrow_mut().push("recover".into());
                Ok(v)
            }),
            Op::Both => d.add_both(move |o| {
                let shown = o.as_ref().map(|x| *x).map_err(|_| ());
                s.borrow_mut().push(format!("both {shown:?}"));
                o
            }),
            Op::Callbacks(v) => {
                let s2 = s.clone();
                d.add_callbacks(
                    move |x| {
                        s.borrow_mut().push(format!("cb {x}"));
                        x * 2
                    },
                    move |_| {
                        s2.borrow_mut().push("eb".into());
                        Ok(v)
                    },
                )
            }
            Op::ChainFired => d.add_callback_deferred(move |x| {
                s.borrow_mut().push(format!("chain {x}"));
                succeed(x - 1)
            }),
            Op::ChainLater => {
                let later = later.clone();
                d.add_callback_deferred(move |x| {
                    s.borrow_mut().push(format!("later {x}"));
                    let inner = Deferred::new();
                    later.borrow_mut().push((inner.trigger(), x + 100));
                    inner
                })
            }
            Op::Peek => {
                let _ = d.called();
                let _ = format!("{d:?}");
                d
            }
        };
    }
    if cancel_at == Some(ops.len()) {
        d.cancel();
    }
    if let Some((t, value, _)) = trigger.take() {
        // After a cancel this is ignored, as in Twisted.
        fire(t, value);
    }
    // Fire the inner Deferreds, including any that firing one of them created.
    loop {
        let next = later.borrow_mut().pop();
        match next {
            Some((t, v)) => t.callback(v),
            None => break,
        }
    }
    let end = match d.result() {
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(()),
        None => panic!("the chain did not complete"),
    };
    let seen = seen.borrow().clone();
    (seen, end)
}

fn fire(t: Trigger<i64>, value: Option<i64>) {
    match value {
        Some(v) => t.callback(v),
        None => t.errback(Failure::new(TimeoutError)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn chains_follow_twisteds_rules_however_they_are_built(
        start in start(),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        prop_assert_eq!(real(&start, &ops), model(&start, &ops));
    }
}
