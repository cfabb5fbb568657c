//! CDEvents 0.5.1 conformance of a CloudEvent body: the official JSON schemas
//! (`fixtures/schemas/cdevents-0.5.1/`, unmodified) plus the facts of the CDEvents spec and of
//! its CloudEvents binding that a schema does not state.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The committed schema files.
fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schemas/cdevents-0.5.1")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Validators for the event types gate sends.
pub struct Schemas {
    deployed: jsonschema::Validator,
    rolledback: jsonschema::Validator,
    custom: jsonschema::Validator,
}

impl Schemas {
    /// Loads the schemas, with the `links` schemas they refer to registered under their `$id`.
    pub fn load() -> Schemas {
        let dir = schema_dir();
        let links: Vec<(String, Value)> = std::fs::read_dir(dir.join("links"))
            .unwrap()
            .map(|entry| {
                let schema = read(&entry.unwrap().path());
                (schema["$id"].as_str().unwrap().to_string(), schema)
            })
            .collect();
        let registry = jsonschema::Registry::new()
            .extend(links)
            .unwrap()
            .prepare()
            .unwrap();
        let build = |file: &str| {
            jsonschema::options()
                .should_validate_formats(true)
                .with_registry(&registry)
                .build(&read(&dir.join(file)))
                .unwrap_or_else(|e| panic!("{file}: {e}"))
        };
        Schemas {
            deployed: build("servicedeployed.json"),
            rolledback: build("servicerolledback.json"),
            custom: build("custom/schema.json"),
        }
    }

    /// Every way `event` (a CloudEvent in structured mode carrying a CDEvent) breaks the
    /// schemas or the spec; empty when it conforms.
    pub fn violations(&self, event: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut fact = |ok: bool, what: &str| {
            if !ok {
                out.push(what.to_string());
            }
        };
        // CloudEvents 1.0 envelope.
        fact(
            event["specversion"] == "1.0",
            "CloudEvents specversion is not 1.0",
        );
        for attribute in ["id", "source", "type", "subject", "time"] {
            fact(
                event[attribute].as_str().is_some_and(|s| !s.is_empty()),
                &format!("CloudEvent `{attribute}` missing or empty"),
            );
        }
        fact(
            event["datacontenttype"] == "application/json",
            "datacontenttype is not application/json",
        );
        let cdevent = &event["data"];
        let context = &cdevent["context"];
        let subject = &cdevent["subject"];
        // The binding: the CloudEvent repeats the CDEvent.
        fact(event["id"] == context["id"], "CloudEvent id ≠ context.id");
        fact(
            event["source"] == context["source"],
            "CloudEvent source ≠ context.source",
        );
        fact(
            event["type"] == context["type"],
            "CloudEvent type ≠ context.type",
        );
        fact(
            event["subject"] == subject["id"],
            "CloudEvent subject ≠ subject.id",
        );
        fact(
            event["time"] == context["timestamp"],
            "CloudEvent time ≠ context.timestamp",
        );
        // Context and subject fields.
        fact(
            context["specversion"] == "0.5.1",
            "context.specversion is not 0.5.1",
        );
        let allowed = [
            "specversion",
            "id",
            "source",
            "type",
            "timestamp",
            "schemaUri",
            "chainId",
            "links",
        ];
        for key in context.as_object().map(|o| o.keys()).into_iter().flatten() {
            fact(
                allowed.contains(&key.as_str()),
                &format!("context has `{key}`"),
            );
        }
        for key in subject.as_object().map(|o| o.keys()).into_iter().flatten() {
            fact(
                ["id", "source", "content"].contains(&key.as_str()),
                &format!("subject has `{key}`"),
            );
        }
        let kind = context["type"].as_str().unwrap_or_default();
        let validator = match kind {
            "dev.cdevents.service.deployed.0.3.0" => &self.deployed,
            "dev.cdevents.service.rolledback.0.3.0" => &self.rolledback,
            k if k.starts_with("dev.cdeventsx.") => {
                let parts: Vec<&str> = k.split('.').collect();
                fact(
                    parts.len() == 7
                        && parts[4..]
                            .iter()
                            .all(|p| p.len() == 1 && p.as_bytes()[0].is_ascii_digit()),
                    &format!("custom type `{k}`: not one digit per version part"),
                );
                &self.custom
            }
            other => {
                out.push(format!("type `{other}` is not one gate sends"));
                return out;
            }
        };
        if kind.starts_with("dev.cdevents.service.") {
            let content = &subject["content"];
            let mut keys: Vec<&String> = content
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys.sort();
            fact(
                keys == ["artifactId", "environment"],
                &format!("service content keys are {keys:?}"),
            );
            let artifact = content["artifactId"].as_str().unwrap_or_default();
            let purl_type = artifact
                .strip_prefix("pkg:")
                .and_then(|rest| rest.split_once('/'))
                .map(|(kind, name)| (kind, name));
            fact(
                purl_type.is_some_and(|(kind, name)| {
                    kind.starts_with(|c: char| c.is_ascii_lowercase())
                        && kind
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".+-".contains(c))
                        && !name.is_empty()
                        && !artifact.contains(char::is_whitespace)
                }),
                &format!("artifactId `{artifact}` is not a purl"),
            );
        }
        for error in validator.iter_errors(cdevent) {
            out.push(format!("schema: {} at {}", error, error.instance_path()));
        }
        out
    }
}
