//! The route table: every endpoint once, with its method, path, roles,
//! bodies and handler. [`crate::app`] builds the router from it and
//! [`crate::openapi`] the OpenAPI document, so neither can miss a route.

mod admin;
mod audit;
mod commands;
mod explain;
mod log;
mod maintenance;
mod ops;
mod problem_types;
mod session;
pub mod views;

pub use commands::IDEMPOTENCY_KEY_BYTES_MAX;

use axum::http::Method;
use axum::routing::MethodRouter;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::AppState;
use crate::auth::Role;

/// Everyone who may write a grant.
pub const WRITERS: &[Role] = &[Role::Admin, Role::Manager];
/// Everyone who may read views.
pub const VIEW_READERS: &[Role] = &[Role::Admin, Role::Auditor, Role::Manager, Role::Viewer];
/// Everyone who may read a grant's history.
pub const HISTORY_READERS: &[Role] = &[Role::Admin, Role::Auditor, Role::Manager];
/// Everyone who may read the whole log.
pub const AUDITORS: &[Role] = &[Role::Admin, Role::Auditor];
/// Admins only.
pub const ADMINS: &[Role] = &[Role::Admin];

/// A JSON Schema producer for the OpenAPI document.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`, as a reference into the document's components.
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// The values the server accepts: the document declares exactly these.
    pub format: Values,
    /// What it does.
    pub description: &'static str,
}

/// The values a query parameter takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    /// A log position, stream version or count: 0 to `u64::MAX`.
    Position,
    /// An integer from the first bound to the second, both included.
    Range(u64, u64),
    /// A business date (YYYY-MM-DD within the business bounds).
    Date,
    /// An RFC 3339 instant.
    Instant,
    /// One of these words.
    Word(&'static [&'static str]),
    /// Text matching this pattern (ECMA-262, anchored).
    Text(&'static str),
}

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    /// Verb.
    pub method: Method,
    /// Path template (axum 0.8 syntax: `/{id}`).
    pub path: &'static str,
    /// Stable operation id.
    pub operation_id: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// Roles that may call it at all (empty: no token needed).
    pub roles: &'static [Role],
    /// Request body schema.
    pub request: Option<SchemaFn>,
    /// Success status.
    pub status: u16,
    /// Success body schema (`None`: not JSON, see `content_type`).
    pub response: Option<SchemaFn>,
    /// Success content type.
    pub content_type: &'static str,
    /// Query parameters.
    pub query: &'static [Param],
    /// Whether it is a grant write (`If-Match`, `Idempotency-Key`, `ETag`).
    pub grant_write: bool,
    /// Whether it is a view with an `ETag` of its bytes (`If-None-Match`, 304).
    pub view_etag: bool,
    /// Whether it is a live stream (`Last-Event-ID`).
    pub live: bool,
    /// Whether only a session cookie authenticates it (the session routes).
    pub session_only: bool,
    /// Problem statuses it answers besides those its kind implies (see
    /// [`crate::openapi`]).
    pub problems: &'static [u16],
    /// Whether a browser asking for `text/html` gets a page instead.
    pub html_too: bool,
    /// A status other than the success one that answers the success body
    /// (`/readyz`: 503 while not ready).
    pub also: Option<u16>,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

impl Route {
    fn new(method: Method, path: &'static str, operation_id: &'static str, handler: MethodRouter<AppState>) -> Self {
        Self {
            method,
            path,
            operation_id,
            summary: "",
            roles: &[],
            request: None,
            status: 200,
            response: None,
            content_type: "application/json",
            query: &[],
            grant_write: false,
            view_etag: false,
            live: false,
            session_only: false,
            problems: &[],
            html_too: false,
            also: None,
            handler,
        }
    }

    fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }

    fn roles(mut self, roles: &'static [Role]) -> Self {
        self.roles = roles;
        self
    }

    fn request<T: JsonSchema>(mut self) -> Self {
        self.request = Some(schema::<T>);
        self
    }

    fn response<T: JsonSchema>(mut self, status: u16) -> Self {
        self.status = status;
        self.response = Some(schema::<T>);
        self
    }

    /// Success is 204 without a body.
    fn no_content(mut self) -> Self {
        self.status = 204;
        self.response = None;
        self.content_type = "";
        self
    }

    fn content(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    fn query(mut self, params: &'static [Param]) -> Self {
        self.query = params;
        self
    }

    fn grant_write(mut self) -> Self {
        self.grant_write = true;
        self
    }

    fn view_etag(mut self) -> Self {
        self.view_etag = true;
        self
    }

    fn live(mut self) -> Self {
        self.live = true;
        self
    }

    fn session_only(mut self) -> Self {
        self.session_only = true;
        self
    }

    fn problems(mut self, statuses: &'static [u16]) -> Self {
        self.problems = statuses;
        self
    }

    fn html_too(mut self) -> Self {
        self.html_too = true;
        self
    }

    fn also(mut self, status: u16) -> Self {
        self.also = Some(status);
        self
    }
}

/// What the route table says of the route a request matched, put in the
/// request's extensions by [`crate::app`]: the roles that may call it
/// (enforced there, before any handler or body is looked at) and its
/// success status (the one a write answers with). The table is the one
/// place either is written.
#[derive(Debug, Clone, Copy)]
pub struct RouteMeta {
    /// Roles that may call it (empty: no token needed).
    pub roles: &'static [Role],
    /// Success status.
    pub status: u16,
}

impl RouteMeta {
    /// The success status as an HTTP status.
    pub fn status_code(&self) -> axum::http::StatusCode {
        axum::http::StatusCode::from_u16(self.status).unwrap_or(axum::http::StatusCode::OK)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RouteMeta {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RouteMeta>()
            .copied()
            .ok_or_else(|| crate::error::ApiError::Internal("a handler ran outside the route table".into()))
    }
}

/// Refuses a caller whose role the route's [`RouteMeta`] does not list:
/// 401 without a valid token, 403 for a role that never makes the call.
/// The authenticated principal is left in the request for the handler.
pub(crate) async fn enforce_roles(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let Some(meta) = request.extensions().get::<RouteMeta>().copied() else {
        return crate::error::ApiError::Internal("a route without its table entry".into()).into_response();
    };
    if meta.roles.is_empty() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let principal = match std::sync::Arc::<crate::auth::Principal>::from_request_parts(&mut parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = principal.require(meta.roles) {
        return e.into_response();
    }
    parts.extensions.insert(principal);
    next.run(axum::extract::Request::from_parts(parts, body)).await
}

/// The programme of a grant the caller may see, for reads: from the
/// projector's in-memory ledgers, falling back to the log only for a grant
/// the views have not applied yet. 404 when it does not exist or is outside
/// the caller's programmes.
pub(crate) async fn readable_grant(
    state: &AppState,
    principal: &crate::auth::Principal,
    grant: &events::GrantId,
) -> Result<events::ProgrammeId, crate::error::ApiError> {
    let programme =
        match state.projector().ledger(grant).await?.and_then(|l| l.grant.as_ref().map(|g| g.programme.clone())) {
            Some(p) => Some(p),
            None => state.handler().awarded(grant).await?.map(|g| g.programme),
        };
    match programme {
        Some(p) if principal.sees(&p) => Ok(p),
        _ => Err(crate::error::ApiError::NotFound(format!("grant {grant}"))),
    }
}

/// Every route.
pub fn table() -> Vec<Route> {
    let mut routes = ops::routes();
    routes.extend(admin::routes());
    routes.extend(commands::routes());
    routes.extend(views::routes());
    routes.extend(explain::routes());
    routes.extend(log::routes());
    routes.extend(audit::routes());
    routes.extend(maintenance::routes());
    routes.extend(session::routes());
    routes.extend(problem_types::routes());
    routes
}
