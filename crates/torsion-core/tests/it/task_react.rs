//! `react` runs the thread's reactor for a main function and turns its outcome into an exit
//! code. Each case runs on its own thread, since `react` uses the thread's reactor.

use std::process::ExitCode;

use torsion::defer::{ensure_deferred, fail, Deferred};
use torsion::error::TimeoutError;
use torsion::task::{defer_later, react};
use torsion::{reactor, Failure};

fn on_thread(f: impl FnOnce() -> ExitCode + Send + 'static) -> ExitCode {
    std::thread::spawn(f).join().unwrap()
}

#[test]
fn react_exits_successfully_when_main_succeeds_later() {
    let code = on_thread(|| {
        react(|r| {
            let r = r.clone();
            ensure_deferred(async move {
                let v = defer_later(&r, 0.01, || 41).await?;
                assert!(reactor().running());
                Ok::<_, Failure>(v + 1)
            })
        })
    });
    assert_eq!(code, ExitCode::SUCCESS);
}

#[test]
fn react_exits_with_failure_when_main_fails() {
    let code = on_thread(|| react(|_| fail::<()>(TimeoutError)));
    assert_eq!(code, ExitCode::FAILURE);
}

#[test]
fn react_stops_the_reactor_it_ran() {
    let code = on_thread(|| {
        let done: Deferred<()> = Deferred::new();
        let fire = done.trigger();
        let code = react(move |r| {
            r.call_later(0.01, move || fire.callback(()));
            done
        });
        assert!(!reactor().running(), "the reactor stopped");
        code
    });
    assert_eq!(code, ExitCode::SUCCESS);
}
