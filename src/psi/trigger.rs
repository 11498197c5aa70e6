//! One kernel PSI trigger: a `*.pressure` file (or `/proc/pressure/*`) opened
//! for writing, a trigger line written to it, and the fd polled for
//! `POLLPRI`.
//!
//! Kernel contract: <https://docs.kernel.org/accounting/psi.html#monitoring-for-pressure-thresholds>
//! One fd holds one trigger; closing the fd removes the trigger, so dropping a
//! [`Trigger`] disarms it. The kernel rate-limits notifications to one per
//! window while pressure lasts.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

// The spec lives with the config it is checked against (config imports no
// part of the agent); arming it is this module's job.
pub use crate::config::{SpecProblem, TriggerSpec};

/// Why a trigger could not be armed or polled.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The pressure file is not there: the cgroup went away between the
    /// event and the open (ENOENT, ENODEV).
    #[error("{path}: cgroup vanished")]
    Vanished { path: PathBuf },
    /// PSI is off (`psi=0`) or the kernel predates this resource's file
    /// (EOPNOTSUPP).
    #[error("{path}: pressure stall information not supported by this kernel")]
    Unsupported { path: PathBuf },
    /// The kernel refused the trigger line.
    #[error("{path}: kernel refused trigger \"{spec}\": {reason}")]
    Invalid {
        path: PathBuf,
        spec: TriggerSpec,
        reason: String,
    },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl TriggerError {
    /// Classifies an errno once, for every caller.
    fn from_io(path: &Path, op: &'static str, spec: &TriggerSpec, e: io::Error) -> TriggerError {
        let path = path.to_path_buf();
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) => TriggerError::Vanished { path },
            Some(libc::EOPNOTSUPP) => TriggerError::Unsupported { path },
            Some(libc::EINVAL) if op == "write" => {
                // The kernel says only EINVAL; name the likely cause.
                let reason = match spec.check(false) {
                    Err(why) => why.to_string(),
                    Ok(()) => "invalid trigger (EINVAL)".to_string(),
                };
                TriggerError::Invalid {
                    path,
                    spec: *spec,
                    reason,
                }
            }
            Some(libc::EBUSY) if op == "write" => TriggerError::Invalid {
                path,
                spec: *spec,
                reason: "a trigger is already armed on this fd (EBUSY)".to_string(),
            },
            _ => TriggerError::Io {
                path,
                op,
                source: e,
            },
        }
    }

    /// A short, stable reason for `psi_trigger_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            TriggerError::Vanished { .. } => "vanished",
            TriggerError::Unsupported { .. } => "unsupported",
            TriggerError::Invalid { .. } => "invalid",
            TriggerError::Io { op, .. } => op,
        }
    }
}

/// What a wait on a trigger returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerEvent {
    /// Stall time passed the threshold within one window.
    Fired,
    /// The cgroup was removed: the fd reports POLLERR forever. The trigger
    /// must be dropped and never polled again.
    Gone,
}

/// A PSI trigger armed on one pressure file. Dropping it disarms it.
#[derive(Debug)]
pub struct Trigger {
    fd: AsyncFd<File>,
    path: PathBuf,
}

impl Trigger {
    /// Opens `path`, writes the trigger and registers the fd with tokio.
    /// Must run inside a tokio runtime; blocking (an open and a write of a
    /// kernel file), so the agent calls it on the blocking pool, whose
    /// threads are inside the runtime.
    #[allow(
        clippy::disallowed_methods,
        reason = "called only on the blocking pool (psi::triggers)"
    )]
    pub fn arm(path: &Path, spec: &TriggerSpec) -> Result<Trigger, TriggerError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                let e = TriggerError::from_io(path, "open", spec, e);
                // The cgroup is there but the file is not: this kernel has
                // no such pressure file (irq.pressure needs
                // CONFIG_IRQ_TIME_ACCOUNTING; none exist with psi=0).
                match e {
                    TriggerError::Vanished { path }
                        if path.parent().is_some_and(|d| d.is_dir()) =>
                    {
                        TriggerError::Unsupported { path }
                    }
                    e => e,
                }
            })?;
        // One write call: the kernel parses each write as a whole trigger.
        let line = spec.line();
        match file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {}
            Ok(_) => {
                return Err(TriggerError::Io {
                    path: path.to_path_buf(),
                    op: "write",
                    source: io::Error::new(io::ErrorKind::WriteZero, "short write"),
                })
            }
            Err(e) => return Err(TriggerError::from_io(path, "write", spec, e)),
        }
        let fd =
            register(file, Interest::PRIORITY | Interest::ERROR).map_err(|e| TriggerError::Io {
                path: path.to_path_buf(),
                op: "register",
                source: e,
            })?;
        Ok(Trigger {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next event. Cancel-safe: dropping the future loses
    /// nothing (readiness stays recorded in tokio until cleared).
    pub async fn next(&self) -> io::Result<TriggerEvent> {
        let mut guard = self.fd.ready(Interest::PRIORITY | Interest::ERROR).await?;
        let ready = guard.ready();
        guard.clear_ready();
        // Kernel quirk: after rmdir the fd polls POLLPRI | POLLERR, so the
        // priority bit alone cannot tell a fire from a removal: test the
        // error bit first.
        Ok(if ready.is_error() {
            TriggerEvent::Gone
        } else {
            TriggerEvent::Fired
        })
    }
}

/// Registers an fd we own (a pressure file, an eventfd) with the tokio
/// reactor. The one place the crate calls tokio's `unsafe` registration.
#[allow(unsafe_code)]
pub(crate) fn register(file: File, interest: Interest) -> io::Result<AsyncFd<File>> {
    // SAFETY: `register_with_interest` requires that the fd stays open and
    // keeps referring to the same file description while the `AsyncFd`
    // owns it. `File` owns its descriptor, returns the same one from
    // `as_raw_fd` for its whole life, and closes it only when dropped, which
    // happens when (and only when) the `AsyncFd` is dropped.
    unsafe { AsyncFd::register_with_interest(file, interest) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PsiKind;

    fn spec(kind: PsiKind, t: u64, w: u64) -> TriggerSpec {
        TriggerSpec {
            kind,
            threshold_us: t,
            window_us: w,
        }
    }

    #[test]
    fn trigger_line_ends_in_nul() {
        assert_eq!(
            spec(PsiKind::Some, 150_000, 2_000_000).line(),
            "some 150000 2000000\0"
        );
        assert_eq!(spec(PsiKind::Full, 1, 4_000_000).line(), "full 1 4000000\0");
    }

    #[test]
    fn unprivileged_window_must_be_a_multiple_of_two_seconds() {
        assert!(spec(PsiKind::Some, 150_000, 2_000_000).check(false).is_ok());
        let e = spec(PsiKind::Some, 150_000, 1_000_000).check(false);
        assert!(e.unwrap_err().contains("multiple of 2s"));
        assert!(spec(PsiKind::Some, 150_000, 1_000_000).check(true).is_ok());
        assert!(spec(PsiKind::Some, 150_000, 12_000_000)
            .check(true)
            .is_err());
        assert!(spec(PsiKind::Some, 3_000_000, 2_000_000)
            .check(true)
            .is_err());
    }

    #[test]
    fn problems_are_the_rules_config_validation_applies() {
        use SpecProblem::*;
        let p = |t, w, privileged| spec(PsiKind::Some, t, w).problems(privileged);
        assert_eq!(p(150_000, 2_000_000, false), vec![]);
        assert_eq!(p(150_000, 1_000_000, false), vec![WindowStep]);
        assert_eq!(p(150_000, 1_000_000, true), vec![]);
        assert_eq!(p(100_000, 400_000, true), vec![WindowRange]);
        assert_eq!(p(0, 2_000_000, false), vec![ThresholdZero]);
        // Equal to the window: refused here as in config (it was let
        // through to the kernel before).
        assert_eq!(
            p(2_000_000, 2_000_000, false),
            vec![ThresholdNotBelowWindow]
        );
        assert_eq!(
            p(150_000, 11_000_000, false),
            vec![WindowRange],
            "range first, then the step"
        );
    }

    #[test]
    fn missing_file_in_a_present_cgroup_is_unsupported_not_vanished() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = spec(PsiKind::Some, 150_000, 2_000_000);
        let e = Trigger::arm(&d.path().join("irq.pressure"), &s).expect_err("no file");
        assert_eq!(e.reason(), "unsupported", "{e}");
        let e = Trigger::arm(&d.path().join("gone/memory.pressure"), &s).expect_err("no dir");
        assert_eq!(e.reason(), "vanished", "{e}");
    }

    #[test]
    fn einval_on_write_names_the_window_rule() {
        let s = spec(PsiKind::Some, 150_000, 1_000_000);
        let e = TriggerError::from_io(
            Path::new("/x/memory.pressure"),
            "write",
            &s,
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(e.reason(), "invalid");
        assert!(e.to_string().contains("multiple of 2s"), "{e}");
        let e = TriggerError::from_io(
            Path::new("/x/memory.pressure"),
            "open",
            &s,
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(e.reason(), "vanished");
    }
}
