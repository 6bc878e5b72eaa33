//! One line for an error and its chain of causes, as every tool here
//! prints them: `what failed: why: the OS error`.

use std::error::Error;

/// The error and each of its sources joined by `": "`. A cause whose text
/// an earlier part already contains is left out: many errors put their
/// source in their own message too, and the OS error should be said once.
pub fn one_line(e: &dyn Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(String, Option<Box<dyn Error + 'static>>);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref()
        }
    }

    fn os_error() -> std::io::Error {
        std::fs::read("/nonexistent/error-line/x").unwrap_err()
    }

    #[test]
    fn joins_each_cause() {
        let e = Wrap("uploading x".into(), Some(Box::new(os_error())));
        let line = one_line(&e);
        assert_eq!(line, format!("uploading x: {}", os_error()));
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let os = os_error().to_string();
        let inner = Wrap(format!("reading x: {os}"), Some(Box::new(os_error())));
        let e = Wrap("building".into(), Some(Box::new(inner)));
        let line = one_line(&e);
        assert_eq!(line.matches(&os).count(), 1, "{line}");
        assert_eq!(line, format!("building: reading x: {os}"));
    }
}
