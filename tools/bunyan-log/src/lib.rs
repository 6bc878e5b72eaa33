//! Triton's log format: bunyan JSON objects, one per line, with the core
//! fields node-bunyan writes (`v`, numeric `level`, `name`, `hostname`,
//! `pid`, `time` in UTC with milliseconds, `msg`). slog-bunyan writes local
//! time, which bunyan's tools do not expect; hence our own drain.

use slog::Drain as _;

/// A logger writing bunyan lines for `name` at `level` and above to
/// stderr (which SMF sends to the service log).
pub fn stderr_logger(name: &'static str, level: slog::Level) -> slog::Logger {
    // Whole lines reach stderr in one write; a failing stderr must not take
    // the service down, so write errors are dropped.
    let drain = drain(name, std::io::LineWriter::new(std::io::stderr()))
        .filter_level(level)
        .ignore_res();
    // The async drain keeps stderr writes off the executor threads; dropping
    // the last logger clone flushes it.
    let drain = slog_async::Async::new(drain)
        .chan_size(1024)
        .build()
        .ignore_res();
    slog::Logger::root(drain, slog::o!())
}

/// A drain formatting records for `name` as bunyan JSON lines into `io`.
pub fn drain<W: std::io::Write>(name: &'static str, io: W) -> slog_json::Json<W> {
    slog_json::Json::new(io)
        .add_key_value(slog::o!(
            "name" => name,
            "hostname" => hostname::get()
                .map_or_else(|_| "unknown".to_string(), |h| h.to_string_lossy().into_owned()),
            "pid" => std::process::id(),
            "level" => slog::FnValue(|r: &slog::Record<'_>| level_number(r.level())),
            "time" => slog::FnValue(|_: &slog::Record<'_>| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }),
            "v" => 0u8,
            "msg" => slog::PushFnValue(|r: &slog::Record<'_>, ser| ser.emit(r.msg())),
        ))
        .build()
}

/// node-bunyan's level numbers.
pub fn level_number(level: slog::Level) -> u8 {
    match level {
        slog::Level::Trace => 10,
        slog::Level::Debug => 20,
        slog::Level::Info => 30,
        slog::Level::Warning => 40,
        slog::Level::Error => 50,
        slog::Level::Critical => 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_has_bunyans_core_fields() {
        let buf = Buf::default();
        let log = slog::Logger::root(
            std::sync::Mutex::new(drain("test", buf.clone())).fuse(),
            slog::o!(),
        );
        slog::warn!(log, "hello"; "k" => 1);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let rec: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(rec["v"], 0);
        assert_eq!(rec["level"], 40);
        assert_eq!(rec["name"], "test");
        assert_eq!(rec["msg"], "hello");
        assert_eq!(rec["k"], 1);
        assert_eq!(rec["pid"], std::process::id());
        let time = rec["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }
}
