//! What one PSI trigger asks the kernel for, and the kernel's rules for
//! it: the one place config validation and the agent's EINVAL explanation
//! both ask. Arming it is `psi::trigger`'s job.
//!
//! Kernel contract: <https://docs.kernel.org/accounting/psi.html#monitoring-for-pressure-thresholds>

use std::fmt;
use std::time::Duration;

use super::{PsiKind, PsiRule, PSI_UNPRIVILEGED_WINDOW_STEP, PSI_WINDOW_MAX, PSI_WINDOW_MIN};

/// What one trigger asks the kernel for: `<kind> <threshold_us> <window_us>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerSpec {
    pub kind: PsiKind,
    pub threshold_us: u64,
    pub window_us: u64,
}

impl TriggerSpec {
    pub fn from_rule(rule: &PsiRule) -> TriggerSpec {
        TriggerSpec {
            kind: rule.kind,
            threshold_us: duration_us(rule.threshold),
            window_us: duration_us(rule.window),
        }
    }

    /// The line written to the pressure file, with the trailing NUL.
    pub fn line(&self) -> String {
        // Kernel quirk: psi_write() overwrites the last byte written with
        // NUL, so without a terminator the window loses its last digit (and
        // `/proc/pressure/*` answers EINVAL). Sending the NUL is always right.
        format!(
            "{} {} {}\0",
            self.kind.name(),
            self.threshold_us,
            self.window_us
        )
    }

    /// Everything wrong with the numbers, by the kernel's rules and one of
    /// ours (threshold below the window). The one place these rules live:
    /// config validation and the EINVAL explanation both ask here.
    /// `privileged` means CAP_SYS_RESOURCE.
    pub fn problems(&self, privileged: bool) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        let w = self.window_us;
        if w < duration_us(PSI_WINDOW_MIN) || w > duration_us(PSI_WINDOW_MAX) {
            out.push(SpecProblem::WindowRange);
        } else if !privileged && w % duration_us(PSI_UNPRIVILEGED_WINDOW_STEP) != 0 {
            out.push(SpecProblem::WindowStep);
        }
        if self.threshold_us == 0 {
            out.push(SpecProblem::ThresholdZero);
        } else if self.threshold_us >= w {
            out.push(SpecProblem::ThresholdNotBelowWindow);
        }
        out
    }

    /// Why the kernel would refuse this trigger with EINVAL (or we would),
    /// when we can tell from the numbers alone.
    pub fn check(&self, privileged: bool) -> Result<(), &'static str> {
        match self.problems(privileged).first() {
            Some(p) => Err(p.reason()),
            None => Ok(()),
        }
    }
}

/// What is wrong with a trigger's numbers (see [`TriggerSpec::problems`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecProblem {
    /// Outside 500ms..10s: the kernel says EINVAL.
    WindowRange,
    /// Not a multiple of 2s without CAP_SYS_RESOURCE: EINVAL.
    WindowStep,
    ThresholdZero,
    /// At or above the window. The kernel refuses above; equal could only
    /// fire on a complete stall, so it is refused as the likely mistake.
    ThresholdNotBelowWindow,
}

impl SpecProblem {
    pub fn reason(self) -> &'static str {
        match self {
            SpecProblem::WindowRange => "window must be between 500ms and 10s",
            SpecProblem::WindowStep => {
                "without CAP_SYS_RESOURCE the window must be a multiple of 2s"
            }
            SpecProblem::ThresholdZero => "threshold must be above 0",
            SpecProblem::ThresholdNotBelowWindow => "threshold must be below the window",
        }
    }
}

impl fmt::Display for TriggerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}us/{}us",
            self.kind.name(),
            self.threshold_us,
            self.window_us
        )
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
