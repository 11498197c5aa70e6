//! Logging setup: logfmt (`ts=… level=info msg="…" key=value`, as the
//! Prometheus exporters write it) or JSON lines, on stderr, so log pipelines
//! that parse node_exporter parse us too.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{LogFormat, LogLevel};

pub fn init(level: LogLevel, format: LogFormat) {
    let ours = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    // Our crate at the chosen level; dependencies one notch quieter.
    // `Targets` rather than `EnvFilter`: the filter is built from a flag,
    // never parsed from the environment, so the regex engine EnvFilter
    // brings (about 0.3 MB of code) would buy nothing.
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("cgroup_psi_exporter", ours);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
        LogFormat::Logfmt => registry
            .with(layer.with_ansi(false).event_format(Logfmt))
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// One event per line in logfmt.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(w, "ts={now} level={level}")?;
        let mut v = LogfmtVisitor {
            w: &mut w,
            msg: None,
            err: None,
        };
        event.record(&mut v);
        if let Some(e) = v.err {
            return Err(e);
        }
        writeln!(w)
    }
}

struct LogfmtVisitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    msg: Option<()>,
    err: Option<fmt::Error>,
}

impl LogfmtVisitor<'_, '_> {
    fn put(&mut self, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        if key == "msg" {
            self.msg = Some(());
        }
        let r = if value.is_empty()
            || value.contains(|c: char| c == ' ' || c == '"' || c == '=' || c.is_control())
        {
            write!(self.w, " {key}={value:?}")
        } else {
            write!(self.w, " {key}={value}")
        };
        if let Err(e) = r {
            self.err = Some(e);
        }
    }
}

impl Visit for LogfmtVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field.name(), &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logfmt_quotes_values_with_spaces() {
        let mut s = String::new();
        let mut w = tracing_subscriber::fmt::format::Writer::new(&mut s);
        let mut v = super::LogfmtVisitor {
            w: &mut w,
            msg: None,
            err: None,
        };
        v.put("message", "cgroup layout detected");
        v.put("mode", "hybrid");
        v.put("empty", "");
        assert_eq!(s, " msg=\"cgroup layout detected\" mode=hybrid empty=\"\"");
    }
}
