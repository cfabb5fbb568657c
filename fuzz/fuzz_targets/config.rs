//! Config load + validation, as `gate check` runs it: YAML text → `load_str` → either a
//! config whose effective YAML (`gate check --effective`) loads again, or diagnostics that are
//! positioned inside the text and render both plainly and with miette.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FILE: &str = "gate.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match gate_rules::config::load_str(FILE, text) {
        Ok(config) => {
            let effective = gate_rules::config::effective_yaml(&config);
            if let Err(err) = gate_rules::config::load_str("effective.yaml", &effective) {
                panic!(
                    "the effective config does not load again:\n{}\n---\n{effective}",
                    err.render_plain()
                );
            }
        }
        Err(err) => {
            let diagnostics = err.diagnostics();
            assert!(!diagnostics.is_empty(), "a refused config names no problem");
            for d in diagnostics {
                let (start, len) = d.span;
                assert!(
                    start.checked_add(len).is_some_and(|end| end <= text.len()),
                    "span {:?} outside a text of {} bytes: {}",
                    d.span,
                    text.len(),
                    d.render_plain()
                );
                assert!(d.line >= 1 && d.column >= 1, "{}", d.render_plain());
            }
            let _ = err.render_plain();
            let handler = miette::GraphicalReportHandler::new();
            for report in err.reports() {
                let mut out = String::new();
                let _ = handler.render_report(&mut out, report.as_ref());
            }
        }
    }
});
