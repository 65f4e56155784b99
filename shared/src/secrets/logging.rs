//! The functions' log subscriber: the Lambda runtime's default one, minus the single line that would carry a
//! request body.
//!
//! `lambda_http::tracing::init_default_subscriber` takes its level from `AWS_LAMBDA_LOG_LEVEL` (the
//! template's `LogLevel`), else `RUST_LOG`, and writes JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`. At `TRACE`,
//! `lambda_runtime` logs every raw invocation event ("raw JSON event received from Lambda"), which holds
//! the request body with the caller's `auth` (CRM credentials, the bridge token) and its headers. This
//! subscriber is the same, except that target never logs below `DEBUG`.

use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Where `lambda_runtime` logs the raw event, at `TRACE`.
pub const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// Installs the subscriber for a Lambda function (stdout, level and format from the environment).
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|v| LevelFilter::from_str(&v).ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    // A second subscriber (tests) keeps the first.
    let _ = tracing::subscriber::set_global_default(subscriber(level, &directives, json, std::io::stdout));
}

/// The subscriber [`init`] installs, at `level` with `RUST_LOG`-style `directives`, writing to `writer`:
/// JSON lines or plain text (no colour codes: CloudWatch shows them as text), without time (Lambda stamps
/// each line) or target, the raw event never logged.
pub fn subscriber<W>(level: LevelFilter, directives: &str, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        // Everything reaches the filter below, which decides.
        .with_max_level(LevelFilter::TRACE)
        .with_writer(writer);
    let filter = filter(level, directives);
    if json {
        Box::new(builder.json().finish().with(filter))
    } else {
        Box::new(builder.finish().with(filter))
    }
}

/// `level`, refined by `directives` (`RUST_LOG`'s `target=level` and bare levels, comma-separated; one that
/// does not parse is left out), with the raw event's target capped at `DEBUG`. Targets only: span and
/// field directives (which could turn on events inside a span, the raw event among them) are not read.
fn filter(level: LevelFilter, directives: &str) -> Targets {
    let mut filter = Targets::new().with_default(level);
    for directive in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let Ok(parsed) = Targets::from_str(directive) else {
            continue;
        };
        if let Some(default) = parsed.default_level() {
            filter = filter.with_default(default);
        }
        filter.extend(parsed);
    }
    // Added last, so it replaces any directive for the same target; more specific than any directive for
    // `lambda_runtime` or `lambda_runtime::layers`, so it wins over those.
    filter.with_target(RAW_EVENT_TARGET, level.min(LevelFilter::DEBUG))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn captured(level: LevelFilter, directives: &str, json: bool) -> String {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(subscriber(level, directives, json, buffer.clone()), || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{\"auth\":{\"api_token\":\"raw-secret\"}}", "raw JSON event received from Lambda");
            tracing::trace!(target: "bridge::anything", count = 3, "a trace line");
            tracing::debug!(target: "lambda_runtime::layers::api_response", "a runtime debug line");
        });
        let bytes = buffer.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn at_trace_everything_is_logged_except_the_raw_event() {
        for (directives, json) in [
            ("", false),
            ("", true),
            ("lambda_runtime=trace,trace", false),
            ("lambda_runtime::layers::api_response=trace", false),
            ("[invoke]=trace,lambda_runtime=trace", false),
        ] {
            let out = captured(LevelFilter::TRACE, directives, json);
            assert!(!out.contains("raw-secret") && !out.contains("raw JSON event"), "{out}");
            assert!(out.contains("a trace line") && out.contains("a runtime debug line"), "{out}");
        }
        assert!(captured(LevelFilter::TRACE, "", true).lines().all(|l| l.starts_with('{')));
    }

    #[test]
    fn directives_refine_the_level_and_unreadable_ones_are_left_out() {
        let out = captured(LevelFilter::INFO, "bridge=trace,not a directive=", false);
        assert!(out.contains("a trace line") && !out.contains("a runtime debug line"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out:?}");
    }

    #[test]
    fn the_cap_never_raises_the_runtime_above_the_chosen_level() {
        let out = captured(LevelFilter::INFO, "", false);
        assert!(!out.contains("a runtime debug line") && !out.contains("a trace line"), "{out}");
    }
}
