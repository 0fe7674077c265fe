//! Fidelity to Twisted, checked against Twisted itself (installed from PyPI into the venv the
//! interop tests share): `tests/interop/fidelity_twisted.py` runs each scenario in Twisted,
//! with a `Clock` and a `StringTransport` and no network, and prints `NAME: OUTCOME`; each test
//! here runs the same scenarios in Torsion, writes their outcomes the same way and compares.
//! Where Torsion follows Twisted the lines must be equal; where it differs on purpose
//! (docs/design.md, "Differences from Twisted") Twisted's line must be what the docs say
//! Twisted does, and Torsion's what they say Torsion does instead.
//!
//! Skipped, loudly, only where `python3` is missing; a failed install is a failed test.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::process::Command;
use std::rc::Rc;
use std::sync::OnceLock;

use torsion::defer::{
    ensure_deferred, fail, gather_results, race, succeed, AllFailedError, CancelledError, Deferred,
    DeferredList, FailureGroup, FirstError,
};
use torsion::error::{ConnectionDone, TimeoutError};
use torsion::protocols::basic::{LineReceiver, LineTransport, Lines};
use torsion::task::defer_later;
use torsion::testing::{Clock, StringTransport};
use torsion::{Failure, Protocol};

use crate::support::captured_log;
use crate::support::peer::twisted_python;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/fidelity_twisted.py"
);

const DESIGN: &str = include_str!("../../../../docs/design.md");

/// Every scenario the script runs, each compared by one test below.
const SCENARIOS: &[&str] = &[
    "lines_max_length_delimiter_split_across_reads",
    "lines_max_length_in_one_read",
    "lines_partial_line_of_limit_plus_one_waits",
    "lines_partial_line_of_limit_plus_delimiter_is_exceeded",
    "lines_overlong_line_hands_over_the_rest",
    "lines_crlf_across_chunks",
    "fire_end_of_chain",
    "ensure_deferred_cancel_awaiting_defer_later",
    "ensure_deferred_cancel_recovered",
    "cancel_reaches_returned_deferred",
    "cancel_returned_canceller_answers",
    "cancel_reaches_two_levels_down",
    "cancel_after_returned_deferred_fired",
    "dlist_default_keeps_member_failures_unhandled",
    "dlist_consume_errors_logs_nothing",
    "gather_default_keeps_every_member_failure_unhandled",
    "gather_consume_errors_later_failure",
    "fire_on_one_callback_first_success",
    "fire_on_one_callback_all_fail",
    "fire_on_one_callback_of_nothing",
    "fire_on_one_errback_first_failure",
    "race_first_success",
    "race_all_fail",
    "race_of_nothing",
    "race_loser_fails_with_another_error",
];

/// Twisted's outcome of every scenario, by name (the script runs once per test process), or
/// None, loudly, without python3.
fn twisted() -> Option<&'static BTreeMap<String, String>> {
    static OUTCOMES: OnceLock<Option<BTreeMap<String, String>>> = OnceLock::new();
    OUTCOMES
        .get_or_init(|| {
            let py = twisted_python()?;
            let out = Command::new(py).arg(SCRIPT).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{SCRIPT} failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let outcomes: BTreeMap<String, String> = stdout
                .lines()
                .map(|line| {
                    let (name, outcome) = line
                        .split_once(": ")
                        .unwrap_or_else(|| panic!("not NAME: OUTCOME: {line:?}"));
                    (name.to_string(), outcome.to_string())
                })
                .collect();
            Some(outcomes)
        })
        .as_ref()
}

/// Twisted's outcome of `name`.
fn twisted_says(outcomes: &BTreeMap<String, String>, name: &str) -> String {
    outcomes
        .get(name)
        .unwrap_or_else(|| panic!("Twisted printed no line for {name}: {outcomes:#?}"))
        .clone()
}

/// Torsion does what Twisted does.
fn same(outcomes: &BTreeMap<String, String>, name: &str, torsion: String) {
    assert!(SCENARIOS.contains(&name), "{name} is not in SCENARIOS");
    assert_eq!(
        torsion,
        twisted_says(outcomes, name),
        "{name}: Torsion (left) differs from Twisted (right)"
    );
}

/// Torsion differs from Twisted as docs/design.md's entry `heading` says: Twisted does
/// `twisted_does`, Torsion `torsion_does`.
fn differs(
    outcomes: &BTreeMap<String, String>,
    name: &str,
    heading: &str,
    twisted_does: &str,
    torsion_does: &str,
    torsion: String,
) {
    assert!(SCENARIOS.contains(&name), "{name} is not in SCENARIOS");
    assert!(
        DESIGN.contains(&format!("\n### {heading}\n")),
        "docs/design.md has no entry \"### {heading}\" for {name}"
    );
    assert_eq!(
        twisted_says(outcomes, name),
        twisted_does,
        "{name}: Twisted no longer does what docs/design.md (\"{heading}\") says"
    );
    assert_eq!(
        torsion, torsion_does,
        "{name}: Torsion no longer does what docs/design.md (\"{heading}\") says"
    );
    assert_ne!(twisted_does, torsion_does);
}

#[test]
fn the_script_runs_exactly_the_scenarios_compared_here() {
    let Some(outcomes) = twisted() else { return };
    let printed: Vec<&str> = outcomes.keys().map(String::as_str).collect();
    let mut expected = SCENARIOS.to_vec();
    expected.sort_unstable();
    assert_eq!(printed, expected);
}

/// A failure's type as the script names it (Python's class name).
fn kind(f: &Failure) -> &'static str {
    f.type_name().rsplit("::").next().unwrap()
}

/// `ok(VALUE)`, `fail(TYPE)` or `not fired`, as the script's `outcome`.
fn outcome<T: Display + 'static>(d: &Deferred<T>) -> String {
    match d.result() {
        Some(Ok(v)) => format!("ok({v})"),
        Some(Err(f)) => format!("fail({})", kind(&f)),
        None => "not fired".to_string(),
    }
}

// 1. LineReceiver and MAX_LENGTH.

struct Script(Rc<RefCell<Vec<String>>>);

impl LineReceiver for Script {
    fn max_length(&self) -> usize {
        10
    }
    fn line_received(&mut self, _: &mut LineTransport<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        self.0.borrow_mut().push(format!("line({line})"));
    }
    fn line_length_exceeded(&mut self, t: &mut LineTransport<'_>, line: &[u8]) {
        self.0
            .borrow_mut()
            .push(format!("exceeded({})", line.len()));
        t.lose_connection();
    }
}

fn lines(chunks: &[&[u8]]) -> String {
    let events = Rc::new(RefCell::new(Vec::new()));
    let mut p = Lines::new(Script(events.clone()));
    let st = StringTransport::new();
    let t = st.transport();
    p.connection_made(&t);
    for c in chunks {
        p.data_received(&t, c);
    }
    let mut events = events.take();
    events.push(if st.disconnecting() { "closed" } else { "open" }.to_string());
    events.join(" ")
}

#[test]
fn line_receiver_max_length_follows_twisted() {
    let Some(tw) = twisted() else { return };
    let x11 = [b'x'; 11];
    let x12 = [b'x'; 12];
    for (name, chunks) in [
        (
            "lines_max_length_delimiter_split_across_reads",
            &[&b"0123456789\r"[..], b"\n"][..],
        ),
        ("lines_max_length_in_one_read", &[&b"0123456789\r\n"[..]]),
        ("lines_partial_line_of_limit_plus_one_waits", &[&x11[..]]),
        (
            "lines_partial_line_of_limit_plus_delimiter_is_exceeded",
            &[&x12[..]],
        ),
        (
            "lines_overlong_line_hands_over_the_rest",
            &[&b"0123456789abc\r\nnext\r\n"[..]],
        ),
        (
            "lines_crlf_across_chunks",
            &[&b"one\r"[..], b"\ntwo\r\nthr", b"ee\r\n"],
        ),
    ] {
        same(tw, name, lines(chunks));
    }
}

// 2. Firing the end of a chain.

fn fired<E>(r: Result<(), E>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(e) => std::any::type_name_of_val(&e).rsplit("::").next().unwrap(),
    }
}

#[test]
fn firing_the_end_of_a_chain_differs_as_documented() {
    let Some(tw) = twisted() else { return };
    // Twisted's `d.addCallback(f)` returns `d` itself: firing it fires the chain, and firing
    // it again (as `d`) is AlreadyCalledError. Torsion's end of a chain refuses to fire; its
    // start (the trigger) fires it. Either way `f` runs once, with the value fired.
    let start = Deferred::<i32>::new();
    let fire = start.trigger();
    let end = start.add_callback(|x| x + 1);
    let first = fired(end.try_callback(1));
    let second = fired(fire.try_callback(1));
    let result = end.result().unwrap().unwrap();
    differs(
        tw,
        "fire_end_of_chain",
        "Firing a Deferred after adding callbacks goes through a Trigger",
        "end.callback(1)=ok start.callback(1)=AlreadyCalledError end.result=2",
        "end.callback(1)=AlreadyCalledError start.callback(1)=ok end.result=2",
        format!("end.callback(1)={first} start.callback(1)={second} end.result={result}"),
    );
}

// 3. Cancelling ensure_deferred of async code awaiting defer_later.

fn pending(clock: &Clock) -> String {
    let times: Vec<String> = clock
        .pending_call_times()
        .iter()
        .map(|t| format!("{t:.1}"))
        .collect();
    format!("[{}]", times.join(", "))
}

fn cancel_awaiting(recover: bool) -> String {
    let clock = Rc::new(Clock::new());
    let seen = Rc::new(RefCell::new(Vec::<&'static str>::new()));
    let (c, s) = (clock.clone(), seen.clone());
    let d = ensure_deferred(async move {
        match defer_later(&*c, 5.0, || "1".to_string()).await {
            Ok(v) => Ok(v),
            Err(f) => {
                s.borrow_mut().push(kind(&f));
                if recover && f.check::<CancelledError>() {
                    Ok("cleaned up".to_string())
                } else {
                    Err(f)
                }
            }
        }
    });
    let before = pending(&clock);
    d.cancel();
    let after = pending(&clock);
    let saw = seen.borrow().join(",");
    format!(
        "pending={before} cancel: pending={after} code_saw={saw} result={}",
        outcome(&d)
    )
}

#[test]
fn cancelling_ensure_deferred_awaiting_defer_later_follows_twisted() {
    let Some(tw) = twisted() else { return };
    same(
        tw,
        "ensure_deferred_cancel_awaiting_defer_later",
        cancel_awaiting(false),
    );
    same(
        tw,
        "ensure_deferred_cancel_recovered",
        cancel_awaiting(true),
    );
}

// 4. Cancelling a chain that waits on a Deferred a callback returned.

#[test]
fn cancelling_reaches_a_deferred_returned_by_a_callback_as_in_twisted() {
    let Some(tw) = twisted() else { return };

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let end = succeed(1)
        .add_callback_deferred(move |_| Deferred::<i32>::with_canceller(move |_| r.set(true)))
        .add_callback(|v| v + 1);
    end.cancel();
    let result = outcome(&end);
    let line = format!("canceller_ran={} result={result}", py_bool(ran.get()));
    same(tw, "cancel_reaches_returned_deferred", line);

    let end = succeed(())
        .add_callback_deferred(|()| Deferred::<i32>::with_canceller(|t| t.errback(ConnectionDone)))
        .add_callback(|v| v * 2);
    end.cancel();
    let line = format!("result={}", outcome(&end));
    same(tw, "cancel_returned_canceller_answers", line);

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let end = succeed(()).add_callback_deferred(move |()| {
        succeed(()).add_callback_deferred(move |()| {
            Deferred::<&str>::with_canceller(move |t| {
                r.set(true);
                t.callback("cancelled, but answered");
            })
        })
    });
    end.cancel();
    let result = outcome(&end);
    let line = format!("canceller_ran={} result={result}", py_bool(ran.get()));
    same(tw, "cancel_reaches_two_levels_down", line);

    let inner = Deferred::<i32>::new();
    let fire = inner.trigger();
    let end = succeed(()).add_callback_deferred(move |()| inner);
    fire.callback(4);
    end.cancel();
    let line = format!("result={}", outcome(&end));
    same(tw, "cancel_after_returned_deferred_fired", line);
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

// 5. DeferredList, gather_results, race.

/// What `f` logged, counted as the script counts Twisted's log events.
fn logged(f: impl FnOnce()) -> String {
    let log = captured_log(f);
    let unhandled = log.matches("Unhandled error in Deferred").count();
    let warnings = log.matches(" WARN ").count();
    format!("unhandled={unhandled} warnings={warnings}")
}

fn entries<T: Display>(results: &[Result<T, Failure>]) -> String {
    let each: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(v) => format!("ok({v})"),
            Err(f) => format!("fail({})", kind(f)),
        })
        .collect();
    format!("[{}]", each.join(", "))
}

fn kinds(failures: &[Failure]) -> String {
    let each: Vec<&str> = failures.iter().map(kind).collect();
    format!("[{}]", each.join(", "))
}

fn first_error(f: &Failure) -> String {
    let first = f
        .downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("not a FirstError: {f:?}"));
    format!(
        "FirstError(index={}, {})",
        first.index,
        kind(&first.failure)
    )
}

/// `n` unfired Deferreds and their triggers.
fn pending_ds(n: usize) -> (Vec<Deferred<i32>>, Vec<torsion::defer::Trigger<i32>>) {
    let ds: Vec<Deferred<i32>> = (0..n).map(|_| Deferred::new()).collect();
    let ts = ds.iter().map(Deferred::trigger).collect();
    (ds, ts)
}

#[test]
fn deferred_list_follows_twisted_where_meant_and_differs_as_documented() {
    let Some(tw) = twisted() else { return };

    // consumeErrors=False (the default): the failures are in the list and, left in their
    // members, logged as unhandled when those go.
    let results = RefCell::new(String::new());
    let log = logged(|| {
        let list = DeferredList::new(vec![succeed(1), fail(TimeoutError), fail(ConnectionDone)]);
        *results.borrow_mut() = entries(&list.result().unwrap().unwrap());
        drop(list);
    });
    same(
        tw,
        "dlist_default_keeps_member_failures_unhandled",
        format!("results={} {log}", results.take()),
    );

    let log = logged(|| {
        let list = DeferredList::builder(vec![succeed(1), fail(TimeoutError)])
            .consume_errors(true)
            .build();
        *results.borrow_mut() = entries(&list.result().unwrap().unwrap());
    });
    same(
        tw,
        "dlist_consume_errors_logs_nothing",
        format!("results={} {log}", results.take()),
    );

    let (ds, ts) = pending_ds(3);
    let log = logged(|| {
        let all = gather_results(ds);
        let mut ts = ts.into_iter();
        let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
        t1.errback(TimeoutError);
        t2.errback(ConnectionDone);
        t0.callback(0);
        *results.borrow_mut() = first_error(&all.result().unwrap().unwrap_err());
    });
    same(
        tw,
        "gather_default_keeps_every_member_failure_unhandled",
        format!("{} {log}", results.take()),
    );

    let (ds, ts) = pending_ds(3);
    let log = logged(|| {
        let all = DeferredList::builder(ds).consume_errors(true).gather();
        let mut ts = ts.into_iter();
        let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
        t0.errback(TimeoutError);
        t1.errback(ConnectionDone);
        t2.callback(2);
        *results.borrow_mut() = first_error(&all.result().unwrap().unwrap_err());
    });
    differs(
        tw,
        "gather_consume_errors_later_failure",
        "Failures after the first are logged, even when consumed",
        "FirstError(index=0, TimeoutError) unhandled=0 warnings=0",
        "FirstError(index=0, TimeoutError) unhandled=0 warnings=1",
        format!("{} {log}", results.take()),
    );

    let (ds, ts) = pending_ds(3);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_callback();
    let mut ts = ts.into_iter();
    let (t0, t1, t2) = (ts.next().unwrap(), ts.next().unwrap(), ts.next().unwrap());
    t0.errback(TimeoutError);
    let after_failure = if first.called() { "fired" } else { "waiting" };
    t2.callback(22);
    t1.callback(11);
    let (index, value) = first.result().unwrap().unwrap().unwrap();
    differs(
        tw,
        "fire_on_one_callback_first_success",
        "(index, value) pairs",
        "after_a_failure=waiting result=(22, 2)",
        "after_a_failure=waiting result=(2, 22)",
        format!("after_a_failure={after_failure} result=({index}, {value})"),
    );

    // Every member failed: Twisted calls back (not errbacks) with the list of failures;
    // Torsion calls back with `Err(AllFailedError)`, the same failures in list order.
    let (ds, ts) = pending_ds(2);
    let first = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_callback();
    let mut ts = ts.into_iter();
    let (t0, t1) = (ts.next().unwrap(), ts.next().unwrap());
    t1.errback(ConnectionDone);
    let after_one = if first.called() { "fired" } else { "waiting" };
    t0.errback(TimeoutError);
    let fired_with = match first.result().unwrap() {
        Ok(Err(AllFailedError { failures })) => format!("callback(failures={})", kinds(&failures)),
        Ok(Ok(pair)) => format!("callback({pair:?})"),
        Err(f) => format!("errback({})", kind(&f)),
    };
    same(
        tw,
        "fire_on_one_callback_all_fail",
        format!("after_one={after_one} fired={fired_with}"),
    );

    let first = DeferredList::builder(Vec::<Deferred<i32>>::new()).fire_on_one_callback();
    let line = match first.result() {
        Some(Ok(Err(AllFailedError { failures }))) => {
            format!("fired callback(failures={})", kinds(&failures))
        }
        Some(other) => format!("fired {other:?}"),
        None => "never fires".to_string(),
    };
    differs(
        tw,
        "fire_on_one_callback_of_nothing",
        "An empty fire_on_one_callback or race fires at once",
        "never fires",
        "fired callback(failures=[])",
        line,
    );

    let (ds, ts) = pending_ds(3);
    let list = DeferredList::builder(ds)
        .consume_errors(true)
        .fire_on_one_errback(true)
        .build();
    let mut ts = ts.into_iter();
    ts.next().unwrap().callback(0);
    ts.next().unwrap().errback(TimeoutError);
    let line = match list.result() {
        Some(Err(f)) => format!("fired=yes {}", first_error(&f)),
        Some(Ok(r)) => format!("fired=yes ok({})", entries(&r)),
        None => "fired=no".to_string(),
    };
    same(tw, "fire_on_one_errback_first_failure", line);
    ts.next().unwrap().callback(2);
}

#[test]
fn race_follows_twisted_where_meant_and_differs_as_documented() {
    let Some(tw) = twisted() else { return };

    let cancelled = Rc::new(Cell::new(0));
    let result = RefCell::new(String::new());
    let log = logged(|| {
        let ds: Vec<Deferred<i32>> = (0..3)
            .map(|_| {
                let c = cancelled.clone();
                Deferred::with_canceller(move |_| c.set(c.get() + 1))
            })
            .collect();
        let ts: Vec<_> = ds.iter().map(Deferred::trigger).collect();
        let winner = race(ds);
        ts.into_iter().nth(1).unwrap().callback(11);
        let (index, value) = winner.result().unwrap().unwrap();
        *result.borrow_mut() = format!("({index}, {value})");
    });
    same(
        tw,
        "race_first_success",
        format!(
            "result={} losers_cancelled={} {log}",
            result.take(),
            cancelled.get()
        ),
    );

    let (ds, ts) = pending_ds(2);
    let winner = race(ds);
    let mut ts = ts.into_iter();
    let (t0, t1) = (ts.next().unwrap(), ts.next().unwrap());
    t1.errback(ConnectionDone);
    let after_one = if winner.called() { "fired" } else { "waiting" };
    t0.errback(TimeoutError);
    let failure = winner.result().unwrap().unwrap_err();
    let group = failure
        .downcast_ref::<FailureGroup>()
        .unwrap_or_else(|| panic!("not a FailureGroup: {failure:?}"));
    same(
        tw,
        "race_all_fail",
        format!(
            "after_one={after_one} failed={}({})",
            kind(&failure),
            kinds(&group.failures)
        ),
    );

    let winner = race(Vec::<Deferred<i32>>::new());
    let line = match winner.result() {
        Some(Err(f)) => match f.downcast_ref::<FailureGroup>() {
            Some(group) => format!("fired failed={}({})", kind(&f), kinds(&group.failures)),
            None => format!("fired failed={}", kind(&f)),
        },
        Some(Ok(pair)) => format!("fired {pair:?}"),
        None => "never fires".to_string(),
    };
    differs(
        tw,
        "race_of_nothing",
        "An empty fire_on_one_callback or race fires at once",
        "never fires",
        "fired failed=FailureGroup([])",
        line,
    );

    // A loser whose canceller fails it with an error of its own: Twisted drops it silently,
    // Torsion logs it as a warning.
    let log = logged(|| {
        let stubborn = Deferred::<i32>::with_canceller(|t| t.errback(TimeoutError));
        let quiet = Deferred::<i32>::new();
        let fast = Deferred::<i32>::new();
        let fire = fast.trigger();
        let winner = race(vec![stubborn, quiet, fast]);
        fire.callback(3);
        let (index, value) = winner.result().unwrap().unwrap();
        *result.borrow_mut() = format!("({index}, {value})");
    });
    differs(
        tw,
        "race_loser_fails_with_another_error",
        "Failures after the first are logged, even when consumed",
        "result=(2, 3) unhandled=0 warnings=0",
        "result=(2, 3) unhandled=0 warnings=1",
        format!("result={} {log}", result.take()),
    );
}

// The table at the top of docs/design.md's "Differences from Twisted".

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation (backticks
/// included) dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_of_the_differences_table_leads_somewhere() {
    let section = DESIGN
        .split_once("\n## Differences from Twisted\n")
        .expect("docs/design.md has a \"Differences from Twisted\" section")
        .1;
    let table: Vec<&str> = section
        .split("\n### ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Twisted → Torsion"))
        .collect();
    assert!(table.len() > 20, "the table is gone: {table:#?}");
    let anchors: Vec<String> = DESIGN
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .map(|l| slug(l.trim_start_matches('#').trim()))
        .collect();
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
    for row in table {
        let (_, link) = row
            .rsplit_once("](")
            .unwrap_or_else(|| panic!("a row without a link: {row}"));
        let target = link.split_once(')').unwrap().0;
        match target.strip_prefix('#') {
            Some(anchor) => assert!(
                anchors.iter().any(|a| a == anchor),
                "no heading of docs/design.md has the anchor #{anchor}: {row}"
            ),
            None => assert!(
                std::path::Path::new(docs).join(target).is_file(),
                "docs/{target} does not exist: {row}"
            ),
        }
    }
}
