//! The OpenAPI 3.1 document of the API, generated from the wire types of `gate-api` and the
//! `#[utoipa::path]` annotations on the handlers in [`super::trains`], [`super::report`] and
//! [`super::ops`].
//!
//! It is served at `GET /v1/openapi.json` and committed as `docs/openapi.json`, which a test
//! keeps equal to [`document`] (`UPDATE_OPENAPI=1 cargo test --workspace --lib openapi`
//! rewrites it). Another test checks that every route of the router is in the document, so a
//! route cannot be added without its description.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::{calendar, ops, report, trains};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gate",
        description = "SLO-driven release gate: register release trains, read (or long-poll) \
            their decisions (promote, pause, rollback), override them. Every error is \
            `{\"error\": {\"code\", \"message\"}}`. When the server has `GATE_API_TOKEN`, POST \
            and DELETE need `Authorization: Bearer <token>` with the route's scope (reads too \
            with `--auth-reads`, except `/healthz`, `/readyz` and `/v1/openapi.json`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        trains::register,
        trains::list,
        trains::show,
        trains::decision,
        trains::override_train,
        trains::approve,
        trains::events,
        calendar::calendar,
        trains::stop,
        report::report,
        crate::daemon::series::series,
        crate::daemon::live::events,
        ops::reload,
        ops::redrive,
        ops::openapi,
        ops::metrics,
        ops::healthz,
        ops::readyz,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "trains", description = "Release trains and their decisions"),
        (name = "operations", description = "Reload, outbox redrive, metrics and probes"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the routes refer to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API's OpenAPI 3.1 document.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as `docs/openapi.json` holds it: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document is JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
    }

    #[test]
    fn docs_openapi_json_is_the_generated_document() {
        let generated = document_json();
        let path = committed_path();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is not the document the code generates; regenerate it with\n  \
             UPDATE_OPENAPI=1 cargo test --workspace --lib openapi\nand commit it"
        );
    }

    #[test]
    fn the_document_follows_the_official_openapi_3_1_schema() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schemas/openapi-3.1");
        let text = std::fs::read_to_string(dir.join("schema.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the OpenAPI 3.1 schema compiles");
        let doc = serde_json::to_value(document()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        // The structure schema leaves Schema Objects alone: each is a JSON Schema 2020-12.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(!schemas.is_empty());
        for (name, schema) in schemas {
            assert!(
                jsonschema::draft202012::meta::is_valid(schema),
                "components.schemas.{name} is not a JSON Schema 2020-12: {schema:#}"
            );
        }
        // And the check can fail: a path item that is not an object breaks it.
        let mut broken = doc.clone();
        broken["paths"]["/v1/trains"] = serde_json::json!("not a path item");
        assert!(!validator.is_valid(&broken));
    }

    #[test]
    fn every_route_is_documented_with_its_errors() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let routes = [
            ("/v1/trains", "post"),
            ("/v1/trains", "get"),
            ("/v1/trains/{id}", "get"),
            ("/v1/trains/{id}", "delete"),
            ("/v1/trains/{id}/decision", "get"),
            ("/v1/trains/{id}/override", "post"),
            ("/v1/trains/{id}/approve", "post"),
            ("/v1/trains/{id}/events", "get"),
            ("/v1/calendar", "get"),
            ("/v1/report", "get"),
            ("/v1/trains/{id}/series", "get"),
            ("/v1/events", "get"),
            ("/v1/reload", "post"),
            ("/v1/outbox/redrive", "post"),
            ("/v1/openapi.json", "get"),
            ("/metrics", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
        ];
        let paths = doc["paths"].as_object().unwrap();
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, routes.len(), "{:?}", paths.keys());
        for (path, method) in routes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            if path.starts_with("/v1/trains") {
                for status in ["400", "401", "404"] {
                    if status == "404" && path == "/v1/trains" {
                        continue;
                    }
                    let error = &responses[status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        error["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    /// What the server refuses, the document says: train IDs (path parameters and the
    /// registration's `id`) carry the train ID pattern, `state` of the list its grammar, and an
    /// override's `reason` and `actor` must hold a non-blank character (schemathesis reported
    /// each as a schema-valid request rejected).
    #[test]
    fn constraints_the_server_enforces_are_in_the_document() {
        let doc = serde_json::to_value(document()).unwrap();
        let train_id = &doc["components"]["schemas"]["TrainId"];
        assert_eq!(train_id["pattern"], r"^[A-Za-z0-9._:/-]{1,128}$");
        let mut id_params = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "path" && param["name"] == "id" {
                        id_params += 1;
                        assert_eq!(
                            param["schema"]["$ref"], "#/components/schemas/TrainId",
                            "{method} {path}"
                        );
                    }
                }
            }
        }
        assert_eq!(id_params, 7);
        let register = &doc["components"]["schemas"]["RegisterRequest"]["properties"]["id"];
        assert_eq!(register["pattern"], train_id["pattern"]);
        let state = doc["paths"]["/v1/trains"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "state")
            .unwrap();
        assert!(state["schema"]["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^(active|all|"));
        let body = &doc["components"]["schemas"]["OverrideRequest"]["properties"];
        for field in ["reason", "actor"] {
            assert_eq!(body[field]["pattern"], r"\S", "{field}");
        }
    }
}
