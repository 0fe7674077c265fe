//! `get_process_output`, `get_process_value` and `get_process_output_and_value`: what they
//! give, how stderr and signals are treated, and a program that cannot start.

use torsion::defer::Deferred;
use torsion::process::{
    get_process_output, get_process_output_and_value, get_process_value, Env, ProcessOutput,
    ProcessSignalled, ProcessSpec, ProcessTerminated, SpawnError, UnexpectedErrorOutput,
};
use torsion::reactor;

/// Waits (polling, up to 10 s) until every child has ended and no handle is left open.
async fn children_gone() {
    for _ in 0..1000 {
        if reactor().open_handles() == 0 {
            return;
        }
        let d = Deferred::new();
        let t = d.trigger();
        reactor().call_later(0.01, move || t.callback(()));
        d.await.unwrap();
    }
    panic!("a child is still running after 10 s");
}

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec::new("sh").args(["-c", script])
}

#[torsion::test(timeout = 30)]
async fn output_is_stdout_whatever_the_exit_code() {
    let out = get_process_output(ProcessSpec::new("echo").args(["a", "b"]), false)
        .await
        .unwrap();
    assert_eq!(out, b"a b\n");
    // As Twisted: the exit code is not looked at.
    let out = get_process_output(sh("printf partial; exit 4"), false)
        .await
        .unwrap();
    assert_eq!(out, b"partial");
}

#[torsion::test(timeout = 30)]
async fn stderr_fails_output_unless_errortoo() {
    // The failure comes at once, while the child still runs.
    let f = get_process_output(sh("echo fine; echo oops >&2; sleep 0.5"), false)
        .await
        .unwrap_err();
    let e = f
        .downcast_ref::<UnexpectedErrorOutput>()
        .expect("UnexpectedErrorOutput");
    assert_eq!(e.stderr, b"oops\n");
    assert!(f.to_string().contains("got stderr"), "{f}");
    assert_eq!(reactor().open_handles(), 1, "the child still runs");
    children_gone().await;

    let out = get_process_output(sh("echo one; echo two >&2"), true)
        .await
        .unwrap();
    // Both streams are collected (their interleaving is up to the scheduler).
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("one\n") && text.contains("two\n"), "{text:?}");
    assert_eq!(text.len(), 8);
}

#[torsion::test(timeout = 30)]
async fn value_is_the_exit_code() {
    assert_eq!(get_process_value(sh("exit 0")).await.unwrap(), 0);
    assert_eq!(
        get_process_value(sh("echo noise; exit 7")).await.unwrap(),
        7
    );
    let f = get_process_value(sh("kill -TERM $$")).await.unwrap_err();
    let t = f
        .downcast_ref::<ProcessTerminated>()
        .expect("ProcessTerminated");
    assert_eq!(t.signal, Some(15));
}

#[torsion::test(timeout = 30)]
async fn output_and_value_together() {
    let got = get_process_output_and_value(sh("echo out; echo err >&2; exit 2"))
        .await
        .unwrap();
    assert_eq!(
        got,
        ProcessOutput {
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
            exit_code: 2,
        }
    );
    let f = get_process_output_and_value(sh("echo before; kill -KILL $$"))
        .await
        .unwrap_err();
    let s = f
        .downcast_ref::<ProcessSignalled>()
        .expect("ProcessSignalled");
    assert_eq!((s.stdout.as_slice(), s.signal), (&b"before\n"[..], 9));
}

#[torsion::test(timeout = 30)]
async fn environment_reaches_the_helpers() {
    let spec = sh("printf %s \"$GREETING\"").env(Env::extend([("GREETING", "hi there")]));
    assert_eq!(get_process_output(spec, false).await.unwrap(), b"hi there");
}

#[torsion::test(timeout = 30)]
async fn a_program_that_cannot_start_fails_the_deferred() {
    let f = get_process_output(ProcessSpec::new("torsion-no-such-program"), false)
        .await
        .unwrap_err();
    let e = f.downcast_ref::<SpawnError>().expect("SpawnError");
    assert_eq!(e.program(), "torsion-no-such-program");
    assert!(f.to_string().contains("torsion-no-such-program"), "{f}");
    assert!(
        get_process_value(ProcessSpec::new("torsion-no-such-program"))
            .await
            .unwrap_err()
            .check::<SpawnError>()
    );
}
