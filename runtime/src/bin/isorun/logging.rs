//! `--log FILE --log-format json|text` in runc's record shapes (logrus's): containerd's runc
//! shim reads the log as JSON lines `{"level":"error","msg":"...","time":"..."}` and shows
//! the `msg` of the last `error` record, so the shape is part of the interface.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Cli, LogFormat, LogLevel};

/// One record as runc writes it: logrus's JSON (`level`, `msg`, `time`) or text formatter.
#[derive(Debug, Clone, Copy)]
pub struct RuncFormat(pub LogFormat);

/// logrus's level names.
pub fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The event's message, other fields appended as ` key=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Renders one record (pure: the tests call it with a fixed time).
pub fn render(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string(),
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
    }
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut msg = Message::default();
        event.record(&mut msg);
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        writeln!(w, "{}", render(self.0, level_name(event.metadata().level()), &msg.0, &time))
    }
}

/// Set up logging from the global flags.
pub fn init(cli: &Cli) {
    let level = if cli.debug {
        Level::DEBUG
    } else {
        match cli.log_level {
            LogLevel::Trace => Level::TRACE,
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        }
    };
    let format = RuncFormat(cli.log_format);
    // Without --log, errors already go to stderr as one line: log nothing else there
    // unless asked for with --debug or --log-level.
    let Some(path) = &cli.log else {
        if cli.debug || !matches!(cli.log_level, LogLevel::Warn | LogLevel::Error) {
            let _ = tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(std::io::stderr)
                .event_format(format)
                .try_init();
        }
        return;
    };
    let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(path) else {
        eprintln!("isorun: cannot open log file {}", path.display());
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .event_format(format)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(LogFormat::Json, "error", "exec: \"x\": permission denied",
        r#"{"level":"error","msg":"exec: \"x\": permission denied","time":"2026-01-01T00:00:00Z"}"#; "json")]
    #[test_case(LogFormat::Text, "warning", "a b",
        r#"time="2026-01-01T00:00:00Z" level=warning msg="a b""#; "text")]
    fn records(f: LogFormat, level: &str, msg: &str, want: &str) {
        assert_eq!(render(f, level, msg, "2026-01-01T00:00:00Z"), want);
    }

    #[test]
    fn levels_are_logrus_names() {
        assert_eq!(level_name(&Level::ERROR), "error");
        assert_eq!(level_name(&Level::WARN), "warning");
    }
}
