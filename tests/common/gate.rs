//! One test file's kernel tests at a time in a test process.
//!
//! The kernel tests of several files share one test binary (tests/kernel.rs,
//! tests/e2e.rs), where they used to be one binary each, run one after the
//! other. Some change machine-wide state that another file's tests would
//! trip over (inotify sysctls lowered to 1, real memory pressure, the
//! process's own CPU time measured as the agent's cost, watch and fd counts
//! of an exporter while other tests make cgroups). The gate keeps that
//! old isolation: a test enters with the file it is written in, waits
//! while tests of another file are inside, and leaves when its thread ends
//! (libtest runs every test on a thread of its own). Tests of the same
//! file still run side by side, as before.
//!
//! A kernel test enters through the check it starts with
//! (`kernel_unavailable`, `v2_unavailable`, `kernel_ok`), or by calling
//! `enter` itself when it has a check of its own (kernel_namespaces).

use std::cell::RefCell;
use std::sync::{Condvar, Mutex};

struct Inside {
    file: Option<&'static str>,
    tests: usize,
}

static INSIDE: Mutex<Inside> = Mutex::new(Inside {
    file: None,
    tests: 0,
});
static LEFT: Condvar = Condvar::new();

/// Held by a test's thread while it is inside; leaves on thread exit.
struct Entered;

impl Drop for Entered {
    fn drop(&mut self) {
        let mut inside = INSIDE.lock().unwrap_or_else(|e| e.into_inner());
        inside.tests -= 1;
        if inside.tests == 0 {
            inside.file = None;
            LEFT.notify_all();
        }
    }
}

thread_local! {
    static ENTERED: RefCell<Option<Entered>> = const { RefCell::new(None) };
}

/// Enters the gate for the file of the (`#[track_caller]`) caller; a
/// thread already inside stays inside. The main thread never enters (a
/// bench, or a harness running tests on it, would never leave).
#[track_caller]
pub fn enter() {
    let file = std::panic::Location::caller().file();
    if std::thread::current().name() == Some("main") {
        return;
    }
    ENTERED.with(|entered| {
        if entered.borrow().is_some() {
            return;
        }
        let mut inside = INSIDE.lock().unwrap_or_else(|e| e.into_inner());
        while inside.file.is_some_and(|f| f != file) {
            inside = LEFT.wait(inside).unwrap_or_else(|e| e.into_inner());
        }
        inside.file = Some(file);
        inside.tests += 1;
        *entered.borrow_mut() = Some(Entered);
    });
}
