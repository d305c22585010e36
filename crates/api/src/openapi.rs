//! The OpenAPI 3.1 document, generated from the route table and the
//! request/response types' JSON Schemas (schemars; OpenAPI 3.1 schemas are
//! JSON Schema 2020-12). Each operation names the roles that may call it
//! in `x-grantlog-roles`, every problem status it can answer, and the
//! headers it takes and gives.
//!
//! The schemas are the types' own, tidied for code generators by
//! [`tidy`]: a `null` default is dropped (it made generators require the
//! field), a `oneOf` of string constants becomes an `enum`, and a tagged
//! union gets a `discriminator` over component schemas of its own. The
//! event schemas under `events/` are not touched by any of this.

use std::collections::BTreeSet;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::routes::{self, Param, Route, Values};

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
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "grantlog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced grant and project tracking. Errors are RFC 9457 problem+json; \
                            each problem's `type` resolves on this server to what it means and what to do.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "the server that serves this document"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": problem_responses(),
            "headers": headers(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (`Authorization: Bearer <token>`)"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": crate::session::COOKIE,
                    "description": "the dashboard's session cookie (POST /api/v1/session); writes made with it also \
                                    carry `X-CSRF-Token`",
                },
            },
        },
    });
    tidy(&mut doc);
    doc
}

/// The problem statuses an operation can answer, from what it is: every
/// operation refuses a request head over the limits (414, 431), may time
/// out or meet an unavailable log or database (503) or fail (500); a query string may be invalid (400); a path names something
/// that may not exist or be visible (404); a body may be invalid, too
/// large or not JSON (400, 413, 415); a token may be missing, of the wrong
/// role or over its rate (401, 403, 429); a grant write may meet an id
/// that exists (409), a stale `If-Match` (412), a rule of the grant or a
/// reused `Idempotency-Key` (422) or a full disk (507). The route table
/// adds the rest.
pub fn problem_statuses(route: &Route) -> BTreeSet<u16> {
    let mut statuses: BTreeSet<u16> = [414, 431, 500, 503].into();
    if !route.query.is_empty() || route.live {
        statuses.insert(400);
    }
    if !path_params(route.path).is_empty() {
        statuses.extend([400, 404]);
    }
    if route.request.is_some() {
        statuses.extend([400, 413, 415]);
    }
    if !route.roles.is_empty() {
        statuses.extend([401, 403, 429]);
    }
    if route.session_only {
        statuses.insert(401);
    }
    if route.grant_write {
        statuses.extend([409, 412, 422, 507]);
    }
    statuses.extend(route.problems.iter().copied());
    if let Some(also) = route.also {
        statuses.remove(&also);
    }
    statuses
}

fn operation(route: &Route, generator: &mut schemars::SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = path_params(route.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string", "pattern": events::ids::ID_PATTERN, "not": {"enum": [".", ".."]}},
            })
        })
        .collect();
    parameters.extend(route.query.iter().map(query_param));
    if route.grant_write {
        let key = json!({"type": "string", "minLength": 1, "maxLength": routes::IDEMPOTENCY_KEY_BYTES_MAX, "pattern": "^[\\x21-\\x7E]+$"});
        parameters.push(header_param("Idempotency-Key", IDEMPOTENCY_KEY_DESCRIPTION, key));
        parameters.push(header_param(
            "If-Match",
            "`*`, or entity tags of grant versions (`\"7\"`, or a list `\"7\", \"8\"`: the write proceeds if the \
             grant is at one of them; a weak tag `W/\"7\"` never matches, per RFC 9110)",
            json!({"type": "string", "minLength": 1, "pattern": IF_MATCH_PATTERN}),
        ));
    }
    if route.view_etag {
        parameters.push(header_param(
            "If-None-Match",
            "the `ETag` of a view read before: 304 while the view is unchanged",
            json!({"type": "string"}),
        ));
    }
    if route.live {
        parameters.push(header_param(
            "Last-Event-ID",
            "the last log position received (a reconnection resumes after it; it wins over `after`)",
            json!({"type": "string", "pattern": "^\\s*\\+?[0-9]{1,20}\\s*$"}),
        ));
    }
    let mut responses = Map::new();
    let success_schema = route.response.map(|schema| schema(generator));
    let mut success = match &success_schema {
        None if route.status == 204 => json!({"description": "No Content"}),
        Some(schema) => json!({"description": "OK", "content": {route.content_type: {"schema": schema}}}),
        None => json!({"description": "OK", "content": {route.content_type: {"schema": {"type": "string"}}}}),
    };
    if route.html_too {
        success["content"]["text/html"] = json!({"schema": {"type": "string"}});
    }
    responses.insert(route.status.to_string(), with_headers(success, success_headers(route)));
    if let (Some(also), Some(schema)) = (route.also, &success_schema) {
        let answer = json!({"description": "Not ready: the same body, saying why", "content": {route.content_type: {"schema": schema}}});
        responses.insert(also.to_string(), answer);
    }
    if route.view_etag {
        responses.insert(
            "304".into(),
            json!({"description": "Not Modified: the view's `ETag` is one `If-None-Match` named", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}}),
        );
    }
    for status in problem_statuses(route) {
        responses
            .insert(status.to_string(), json!({"$ref": format!("#/components/responses/{}", response_name(status))}));
    }
    responses.insert("default".into(), json!({"$ref": "#/components/responses/Problem"}));
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
        "x-grantlog-roles": route.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    });
    op["security"] = if !route.roles.is_empty() {
        json!([{"bearer": []}, {"session": []}])
    } else if route.session_only {
        json!([{"session": []}])
    } else {
        json!([])
    };
    if let Some(schema) = route.request {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema(generator)}}});
    }
    op
}

/// An optional request header.
fn header_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "header", "required": false, "description": description, "schema": schema})
}

fn query_param(p: &Param) -> Value {
    let schema = match p.format {
        Values::Position => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        Values::Range(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        Values::Date => crate::input::date_schema(),
        Values::Instant => json!({"type": "string", "format": "date-time"}),
        Values::Word(words) => json!({"type": "string", "enum": words}),
        Values::Text(pattern) => json!({"type": "string", "pattern": pattern}),
    };
    json!({"name": p.name, "in": "query", "required": false, "description": p.description, "schema": schema})
}

/// The headers a success answer carries.
fn success_headers(route: &Route) -> Vec<&'static str> {
    let mut names = vec!["X-Request-Id"];
    if route.grant_write || route.view_etag {
        names.push("ETag");
    }
    if route.grant_write {
        names.push("Idempotent-Replayed");
    }
    if route.query.iter().any(|p| p.name == "limit") {
        names.push("Link");
    }
    names
}

fn with_headers(mut response: Value, names: Vec<&'static str>) -> Value {
    let headers: Map<String, Value> = names
        .into_iter()
        .map(|name| (name.to_owned(), json!({"$ref": format!("#/components/headers/{name}")})))
        .collect();
    response["headers"] = Value::Object(headers);
    response
}

fn headers() -> Value {
    let text = |description: &str| json!({"description": description, "schema": {"type": "string"}});
    json!({
        "X-Request-Id": text("this request's id, also in the server's log lines and in a problem's `request_id`"),
        "ETag": text("a grant write: the grant's version after it (`\"7\"`, for a later `If-Match`); a view: a tag of its bytes (for `If-None-Match`)"),
        "Idempotent-Replayed": {"description": "`true` when the answer is the first answer to this `Idempotency-Key`, replayed", "schema": {"type": "string", "enum": ["true"]}},
        "Link": text("`<next page>; rel=\"next\"` on a full page"),
        "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}},
        "WWW-Authenticate": text("`Bearer`"),
    })
}

/// The name of the shared response of a problem status.
fn response_name(status: u16) -> String {
    format!("Problem{status}")
}

/// What each problem status means, for the shared responses.
const PROBLEM_STATUSES: &[(u16, &str, &[&str])] = &[
    (400, "Bad Request: a parameter, header or body field is invalid; `errors[].pointer` names it", &[]),
    (401, "Unauthorized: no valid token or session", &["WWW-Authenticate"]),
    (403, "Forbidden: the role never makes this call, or a session write failed its CSRF check", &[]),
    (404, "Not Found: no such thing, or not visible to the caller", &[]),
    (409, "Conflict: the id exists already, or other writers kept changing the grant", &[]),
    (412, "Precondition Failed: the grant is not at a version `If-Match` named; `ETag` gives its version", &["ETag"]),
    (413, "Content Too Large: the body is over the limit", &[]),
    (414, "URI Too Long: the request target is over the limit", &[]),
    (415, "Unsupported Media Type: the body is not application/json", &[]),
    (
        422,
        "Unprocessable Content: a rule of the grant refused it, or the Idempotency-Key was used for another request",
        &[],
    ),
    (429, "Too Many Requests: this token is over its rate", &["Retry-After"]),
    (431, "Request Header Fields Too Large: the header fields are over the limit", &[]),
    (500, "Internal Server Error: the server failed; `request_id` names its log line", &[]),
    (
        503,
        "Service Unavailable: timed out, the views are not at `min_position` yet, or the log or database is unavailable; a write may or may not be recorded, so retry it with the same Idempotency-Key",
        &["Retry-After"],
    ),
    (507, "Insufficient Storage: the disk is full; nothing was recorded", &[]),
];

fn problem_responses() -> Value {
    let content = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let mut out = Map::new();
    for (status, description, headers) in PROBLEM_STATUSES {
        let mut response = json!({"description": description, "content": content});
        let names = std::iter::once("X-Request-Id").chain(headers.iter().copied()).collect();
        response = with_headers(response, names);
        out.insert(response_name(*status), response);
    }
    out.insert(
        "Problem".into(),
        with_headers(
            json!({"description": "any other problem (405 with `Allow`, ...)", "content": content}),
            vec!["X-Request-Id"],
        ),
    );
    Value::Object(out)
}

/// Every status [`problem_statuses`] can name has a shared response.
pub fn documented_problem_statuses() -> impl Iterator<Item = u16> {
    PROBLEM_STATUSES.iter().map(|(status, ..)| *status)
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
            "type": {"type": "string", "format": "uri-reference", "description": "resolves on this server to the problem type's description"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "description": "the problem type's stable code (the last segment of `type`)"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
        },
        "additionalProperties": true,
    })
}

/// `*`, or one or more entity tags (strong or weak), comma-separated.
const IF_MATCH_PATTERN: &str = "^\\s*(\\*|(W/)?\"[\\x21\\x23-\\x7E]*\"(\\s*,\\s*(W/)?\"[\\x21\\x23-\\x7E]*\")*)\\s*$";

/// Makes the schemas kind to code generators; see the module's doc.
pub fn tidy(doc: &mut Value) {
    drop_null_defaults(doc);
    const_unions_to_enums(doc);
    let mut hoisted = Map::new();
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, schema) in schemas.iter_mut() {
            discriminate(name, schema, &mut hoisted);
        }
        schemas.extend(hoisted);
    }
}

fn drop_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

/// `{"oneOf": [{"const": "a", "type": "string", "description": ..}, ..]}`
/// becomes `{"type": "string", "enum": ["a", ..]}`, the members'
/// descriptions kept in the description.
fn const_unions_to_enums(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let words: Option<Vec<(String, Option<String>)>> = match map.get("oneOf") {
                Some(Value::Array(members)) => members
                    .iter()
                    .map(|m| {
                        let word = m.get("const")?.as_str()?.to_owned();
                        let extra =
                            m.as_object()?.keys().any(|k| !matches!(k.as_str(), "const" | "type" | "description"));
                        (!extra).then(|| (word, m.get("description").and_then(Value::as_str).map(str::to_owned)))
                    })
                    .collect(),
                _ => None,
            };
            if let Some(words) = words {
                map.remove("oneOf");
                let mut description = map.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
                for (word, said) in &words {
                    if let Some(said) = said {
                        description.push_str(&format!("\n- `{word}`: {said}"));
                    }
                }
                if !description.is_empty() {
                    map.insert("description".into(), json!(description.trim_start()));
                }
                map.insert("type".into(), json!("string"));
                map.insert("enum".into(), json!(words.iter().map(|(w, _)| w).collect::<Vec<_>>()));
            }
            map.values_mut().for_each(const_unions_to_enums);
        }
        Value::Array(items) => items.iter_mut().for_each(const_unions_to_enums),
        _ => {}
    }
}

/// A component that is a `oneOf` of objects each with the same tag
/// property fixed by a `const` (serde's internally tagged enums): each
/// member becomes a component of its own (`ApprovalReallocation`), and the
/// union a `oneOf` of references with a `discriminator` mapping the tags.
fn discriminate(name: &str, schema: &mut Value, hoisted: &mut Map<String, Value>) {
    let Some(Value::Array(members)) = schema.get("oneOf") else { return };
    if members.len() < 2 {
        return;
    }
    let tag_of = |m: &Value| -> Option<(String, String)> {
        let props = m.get("properties")?.as_object()?;
        props.iter().find_map(|(key, p)| Some((key.clone(), p.get("const")?.as_str()?.to_owned())))
    };
    let tags: Option<Vec<(String, String)>> = members.iter().map(tag_of).collect();
    let Some(tags) = tags else { return };
    let property = tags[0].0.clone();
    if tags.iter().any(|(p, _)| *p != property) {
        return;
    }
    let mut refs = Vec::new();
    let mut mapping = Map::new();
    for (member, (_, tag)) in members.iter().zip(&tags) {
        let member_name = format!("{name}{}", pascal(tag));
        let reference = format!("#/components/schemas/{member_name}");
        hoisted.insert(member_name, own_member(member, &property));
        mapping.insert(tag.clone(), json!(reference));
        refs.push(json!({"$ref": reference}));
    }
    schema["oneOf"] = Value::Array(refs);
    schema["discriminator"] = json!({"propertyName": property, "mapping": mapping});
}

/// A member of a tagged union as a schema of its own that declares its
/// tag: one whose tag sits beside a `$ref` (serde's internally tagged
/// newtype variants) becomes the `allOf` of the reference and the tag, so
/// that readers which resolve `$ref` alone still see the tag.
fn own_member(member: &Value, property: &str) -> Value {
    let mut member = member.clone();
    if let Some(tag) = member.pointer_mut(&format!("/properties/{property}")) {
        tag["type"] = json!("string");
    }
    let Value::Object(mut map) = member else { return member };
    let Some(reference) = map.remove("$ref") else { return Value::Object(map) };
    let description = map.remove("description");
    let mut out = json!({"allOf": [{"$ref": reference}, Value::Object(map)]});
    if let Some(description) = description {
        out["description"] = description;
    }
    out
}

/// `no_cost_extension` -> `NoCostExtension`.
fn pascal(word: &str) -> String {
    word.split(['_', '-', '.'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// What the document says of `Idempotency-Key`.
const IDEMPOTENCY_KEY_DESCRIPTION: &str = "A key (1 to 255 visible ASCII characters) that makes the write \
idempotent for the token that sends it. The key is remembered for ever: the log records it (as the \
command id derived from the token's name and the key) with the request's fingerprint (method, route, \
body digest) in the same transaction as the events. The same request again gets the first answer \
(status, ETag, body) with `Idempotent-Replayed: true`, also after a restart; a different request with \
the key, on any route or grant, is 422 `idempotency-key-reused`. A request whose key is in flight waits \
for the first one and gets its answer. A request refused (4xx) records nothing, so its key stays free.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_enums_become_enums_and_null_defaults_go() {
        let mut doc = json!({"components": {"schemas": {
            "Status": {"description": "Where it stands.", "oneOf": [
                {"const": "planned", "type": "string", "description": "Not yet."},
                {"const": "achieved", "type": "string"},
            ]},
            "Body": {"properties": {"note": {"type": ["string", "null"], "default": null}}},
        }}});
        tidy(&mut doc);
        let status = &doc["components"]["schemas"]["Status"];
        assert_eq!(status["enum"], json!(["planned", "achieved"]));
        assert_eq!(status["type"], "string");
        assert!(status.get("oneOf").is_none());
        assert_eq!(status["description"], "Where it stands.\n- `planned`: Not yet.");
        assert!(doc["components"]["schemas"]["Body"]["properties"]["note"].get("default").is_none());
    }

    #[test]
    fn a_tagged_union_gets_a_discriminator_over_components_of_its_own() {
        let mut doc = json!({"components": {"schemas": {
            "Approval": {"oneOf": [
                {"$ref": "#/components/schemas/Request", "properties": {"kind": {"const": "reallocation", "type": "string"}}, "required": ["kind"], "type": "object"},
                {"$ref": "#/components/schemas/Request", "properties": {"kind": {"const": "amendment", "type": "string"}}, "required": ["kind"], "type": "object"},
            ]},
        }}});
        tidy(&mut doc);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Approval"]["discriminator"]["propertyName"], "kind");
        assert_eq!(
            schemas["Approval"]["discriminator"]["mapping"]["amendment"],
            "#/components/schemas/ApprovalAmendment"
        );
        assert_eq!(schemas["Approval"]["oneOf"][0], json!({"$ref": "#/components/schemas/ApprovalReallocation"}));
        let member = &schemas["ApprovalReallocation"];
        assert_eq!(member["allOf"][0], json!({"$ref": "#/components/schemas/Request"}));
        assert_eq!(member["allOf"][1]["properties"]["kind"]["const"], "reallocation");
        assert_eq!(member["allOf"][1]["required"], json!(["kind"]));
    }

    #[test]
    fn every_problem_status_an_operation_names_has_its_response() {
        let documented: BTreeSet<u16> = documented_problem_statuses().collect();
        for route in routes::table() {
            for status in problem_statuses(&route) {
                assert!(documented.contains(&status), "{} {} names {status}", route.method, route.path);
            }
        }
    }

    #[test]
    fn the_document_has_no_null_default_and_no_union_of_constants() {
        let doc = document().to_string();
        assert!(!doc.contains("\"default\":null"), "a null default is left");
        assert!(!doc.contains("\"oneOf\":[{\"const\""), "a union of constants is left");
    }
}
