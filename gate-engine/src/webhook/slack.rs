//! `format: slack`: a decision change as a Slack incoming-webhook message.
//!
//! The body is `{"text", "blocks"}`: `text` is the one-line fallback Slack shows in
//! notifications (and what clients without Block Kit show), `blocks` is the message, read top
//! down by a tired on-call engineer: the verdict as a header, then train, gate, previous
//! decision and deciding rule, then the key numbers against their thresholds, then when, and a
//! link to the train when the config has `public_url`. Mattermost, Rocket.Chat and Discord's
//! `/slack` endpoint accept the same body.
//!
//! Block Kit limits are kept here, not hoped for: a header's `plain_text` is at most
//! [`HEADER_MAX`] characters, a section's text at most [`SECTION_MAX`], a field at most
//! [`FIELD_MAX`]; longer text is cut with `…`. User text (reasons, rule names, train IDs) is
//! escaped for mrkdwn (`&`, `<`, `>`), so a reason like `15.5 > 14.4` cannot turn into a link
//! or a mention.

use gate_rules::Decision;
use serde_json::{json, Value};

use super::payload::DecisionChange;
use crate::report::RuleReport;

/// Most characters of a header block's `plain_text`.
pub const HEADER_MAX: usize = 150;
/// Most characters of a section block's `text`.
pub const SECTION_MAX: usize = 3000;
/// Most characters of one of a section's `fields`.
pub const FIELD_MAX: usize = 2000;
/// Most threshold lines shown; the evidence in the API has all of them.
const MAX_NUMBERS: usize = 10;

/// The Slack message for a decision change; `public_url` (no trailing `/`) adds a link to the
/// train.
pub fn message(change: &DecisionChange, public_url: Option<&str>) -> Value {
    let train = change.train.as_str();
    let verdict = verdict(change.decision);
    let link = public_url.map(|base| format!("{base}/v1/trains/{}", path_segment(train)));

    let mut text = format!(
        "{verdict}: train {} (gate {}) — {}",
        escape(train),
        escape(&change.gate),
        escape(&change.reason)
    );
    text = cut(&text, SECTION_MAX);

    let rule = change.rule.as_deref().unwrap_or("none");
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": cut_plain(&format!("{verdict}: {train}"), HEADER_MAX),
                "emoji": true,
            },
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&escape(&change.reason), SECTION_MAX)},
            "fields": [
                field(&format!("*Train*\n`{}`", escape(train))),
                field(&format!("*Gate*\n{}", escape(&change.gate))),
                field(&format!("*Rule*\n{}", escape(rule))),
                field(&format!("*Was*\n{}", change.previous)),
            ],
        }),
    ];
    let numbers = key_numbers(change);
    if !numbers.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&numbers.join("\n"), SECTION_MAX)},
        }));
    }
    let mut context = vec![json!({
        "type": "mrkdwn",
        "text": format!(
            "evaluated {} · seq {}",
            change.evaluated_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            change.seq
        ),
    })];
    if let Some(link) = &link {
        context.push(json!({
            "type": "mrkdwn",
            "text": format!("<{link}|Open train {}>", escape(train)),
        }));
        text = cut(&format!("{text} <{link}|details>"), SECTION_MAX);
    }
    blocks.push(json!({"type": "context", "elements": context}));
    json!({"text": text, "blocks": blocks})
}

/// The verdict as the header shows it: decision first, in capitals, with a sign readable
/// without colour.
fn verdict(decision: Decision) -> &'static str {
    match decision {
        Decision::Rollback => "🔴 ROLLBACK",
        Decision::Pause => "🟠 PAUSE",
        Decision::Promote => "🟢 PROMOTE",
        Decision::Pending => "⚪ PENDING",
    }
}

/// The deciding rule's comparisons, `signal = value > threshold`, from the evidence; without a
/// deciding rule, those of every rule that fired.
fn key_numbers(change: &DecisionChange) -> Vec<String> {
    let rules: Vec<RuleReport> = change.evidence["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    rules
        .iter()
        .filter(|r| match &change.rule {
            Some(name) => *r.name == **name,
            None => r.fired == Some(true),
        })
        .flat_map(|r| {
            r.thresholds.iter().map(|t| {
                let value = r
                    .values
                    .get(t.signal.as_str())
                    .map_or("unknown".to_string(), shown);
                format!(
                    "`{}` = *{}* {} {}",
                    escape(&t.signal),
                    value,
                    escape(&t.op),
                    t.value
                )
            })
        })
        .take(MAX_NUMBERS)
        .collect()
}

/// A signal's value: a number with at most 4 decimals, `unknown` for null.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "unknown".to_string(),
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |v| {
                let text = format!("{v:.4}");
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            },
        ),
        other => escape(&other.to_string()),
    }
}

fn field(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, FIELD_MAX)})
}

/// Slack's mrkdwn escaping: only `&`, `<` and `>` are special.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters of escaped text, ending in `…` when cut, never inside an entity.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max - 1).collect();
    if let Some(amp) = kept.rfind('&') {
        if !kept[amp..].contains(';') {
            kept.truncate(amp);
        }
    }
    kept.push('…');
    kept
}

/// At most `max` characters of plain text, ending in `…` when cut.
fn cut_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max - 1).collect();
    kept.push('…');
    kept
}

/// A train ID as one URL path segment (`/` and `:` percent-encoded).
fn path_segment(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '/' => "%2F".to_string(),
            ':' => "%3A".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn change(decision: Decision, reason: &str) -> DecisionChange {
        DecisionChange {
            train: gate_rules::train_id::validate("team/checkout:42").unwrap(),
            gate: "checkout".to_string(),
            decision,
            previous: Decision::Pending,
            reason: reason.to_string(),
            rule: Some("fast-burn".to_string()),
            evaluated_at: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
            seq: 3,
            evidence: json!({"rules": [
                {"name": "fast-burn", "then": "rollback", "when": "burn_rate(\"a\", \"1h\") > 14.4",
                 "fired": true, "values": {"burn_rate(\"a\", \"1h\")": 15.5},
                 "streak": 1, "for": 1,
                 "thresholds": [{"signal": "burn_rate(\"a\", \"1h\")", "op": ">", "value": 14.4}]},
                {"name": "slow-burn", "then": "pause", "when": "burn_rate(\"a\", \"6h\") > 6",
                 "fired": false, "values": {"burn_rate(\"a\", \"6h\")": 1.25},
                 "streak": 0, "for": 1,
                 "thresholds": [{"signal": "burn_rate(\"a\", \"6h\")", "op": ">", "value": 6.0}]}
            ]}),
            artifact: None,
            gates: Vec::new(),
        }
    }

    #[test]
    fn the_verdict_comes_first_then_the_numbers_of_the_deciding_rule() {
        let body = message(
            &change(Decision::Rollback, "fast-burn: 15.5 > 14.4 <@U123>"),
            Some("https://gate.example"),
        );
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "🔴 ROLLBACK: team/checkout:42");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("🔴 ROLLBACK: train team/checkout:42"),
            "{text}"
        );
        assert!(text.contains("15.5 &gt; 14.4 &lt;@U123&gt;"), "{text}");
        assert_eq!(
            blocks[2]["text"]["text"], "`burn_rate(\"a\", \"1h\")` = *15.5* &gt; 14.4",
            "only the deciding rule's numbers"
        );
        let context = &blocks[3]["elements"];
        assert_eq!(
            context[1]["text"],
            "<https://gate.example/v1/trains/team%2Fcheckout%3A42|Open train team/checkout:42>"
        );
        let no_link = message(&change(Decision::Pause, "r"), None);
        let last = no_link["blocks"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["elements"].as_array().unwrap().len(), 1);
        assert!(!no_link.to_string().contains("http"));
    }

    #[test]
    fn long_text_is_cut_to_the_block_kit_limits_without_breaking_an_entity() {
        let reason = "<".repeat(5000);
        let body = message(&change(Decision::Pause, &reason), None);
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= SECTION_MAX);
        assert!(
            section.ends_with("&lt;…"),
            "{}",
            &section[section.len() - 20..]
        );
        assert!(body["text"].as_str().unwrap().chars().count() <= SECTION_MAX);
        let long_train = "t".repeat(128);
        let mut c = change(Decision::Promote, "ok");
        c.train = gate_rules::train_id::validate(&long_train).unwrap();
        let header = message(&c, None)["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(header.chars().count() <= HEADER_MAX, "{header}");
        let cut_header = cut_plain(&"x".repeat(200), HEADER_MAX);
        assert_eq!(cut_header.chars().count(), HEADER_MAX);
        assert!(cut_header.ends_with('…'));
    }
}
