//! The OpenAPI 3.1 document, generated from the route table and the
//! request/response types' JSON Schemas (schemars; OpenAPI 3.1 schemas are
//! JSON Schema 2020-12). Each operation names the roles that may call it
//! in `x-grantlog-roles`.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::routes::{self, Route};

/// The document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    for route in routes::table() {
        let op = operation(&route, &mut generator);
        let item = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            item.insert(route.method.as_str().to_lowercase(), op);
        }
    }
    let mut schemas = Map::new();
    for (name, schema) in generator.take_definitions(true) {
        schemas.insert(name, schema);
    }
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "grantlog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced grant and project tracking. Errors are RFC 9457 problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}

fn operation(route: &Route, generator: &mut schemars::SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = path_params(route.path)
        .into_iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "pattern": events::ids::ID_PATTERN, "not": {"enum": [".", ".."]}}}))
        .collect();
    for p in route.query {
        let schema = match p.format {
            "integer" => json!({"type": "integer", "minimum": 0}),
            "date" => crate::input::date_schema(),
            "date-time" => json!({"type": "string", "format": "date-time"}),
            _ => json!({"type": "string"}),
        };
        parameters.push(
            json!({"name": p.name, "in": "query", "required": false, "description": p.description, "schema": schema}),
        );
    }
    if route.grant_write {
        parameters.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": IDEMPOTENCY_KEY_DESCRIPTION,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7E]+$"}
        }));
        parameters.push(json!({"name": "If-Match", "in": "header", "required": false, "description": "`*`, or entity tags of grant versions (`\"7\"`, or a list `\"7\", \"8\"`: the write proceeds if the grant is at one of them; a weak tag `W/\"7\"` never matches, per RFC 9110)", "schema": {"type": "string"}}));
    }
    let success = match route.response {
        None if route.status == 204 => json!({"description": "No Content"}),
        Some(schema) => json!({"description": "OK", "content": {route.content_type: {"schema": schema(generator)}}}),
        None => json!({"description": "OK", "content": {route.content_type: {}}}),
    };
    let problem = json!({"description": "problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut responses = Map::new();
    responses.insert(route.status.to_string(), success);
    responses.insert("default".into(), problem);
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
        "x-grantlog-roles": route.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    });
    if !route.roles.is_empty() {
        op["security"] = json!([{"bearer": []}]);
    }
    if let Some(schema) = route.request {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema(generator)}}});
    }
    op
}

/// `{grant}` and `{id}` in `/api/v1/grants/{grant}/milestones/{id}/achieve`.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details, plus the members that explain the error",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}}}},
        },
        "additionalProperties": true,
    })
}

/// What the document says of `Idempotency-Key`.
const IDEMPOTENCY_KEY_DESCRIPTION: &str = "A key (1 to 255 visible ASCII characters) that makes the write \
idempotent for the token that sends it. The key is remembered for ever: the log records it (as the \
command id derived from the token's name and the key) with the request's fingerprint (method, route, \
body digest) in the same transaction as the events. The same request again gets the first answer \
(status, ETag, body) with `Idempotent-Replayed: true`, also after a restart; a different request with \
the key, on any route or grant, is 422 `idempotency-key-reused`. A request whose key is in flight waits \
for the first one and gets its answer. A request refused (4xx) records nothing, so its key stays free.";
