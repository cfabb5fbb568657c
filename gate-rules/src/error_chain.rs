//! How gate prints an error with its causes: the one walk of a `source()` chain, used by
//! the CLI's `error: … / Caused by: …` report and by the daemon's one-line messages (API
//! errors, `/readyz`, logs).
//!
//! A cause whose text the previous message already ends with is dropped: many errors
//! (reqwest's, I/O wrappers) repeat their source in their own message, and printing it twice
//! reads like two failures.

use std::error::Error;

/// The messages of `e` and its causes, outermost first, without repeats.
pub fn messages(e: &dyn Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.last().is_some_and(|last| last.ends_with(&text)) {
            out.push(text);
        }
        source = cause.source();
    }
    out
}

/// `e` and its causes on one line: `outer: cause: root cause`.
pub fn error_chain(e: &dyn Error) -> String {
    messages(e).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn chains_are_joined_outermost_first_without_repeats() {
        let root = Layer("connection refused", None);
        let repeating = Layer("connect: connection refused", Some(Box::new(root)));
        let top = Layer("store failed", Some(Box::new(repeating)));
        assert_eq!(
            messages(&top),
            ["store failed", "connect: connection refused"]
        );
        assert_eq!(
            error_chain(&top),
            "store failed: connect: connection refused"
        );
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }
}
