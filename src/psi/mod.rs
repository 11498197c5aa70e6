//! PSI alerting agent (being written).
pub mod metrics;
pub mod state;
pub mod trigger;

pub use metrics::PsiMetrics;
