//! The OpenAPI 3.1 document of every endpoint, built with utoipa's typed builders from the wire types'
//! schemas and the endpoint metadata, so it cannot drift from what the server decodes and encodes; and
//! [`render_html`], the same document as the one self-contained page `/docs` serves.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
pub use utoipa::openapi::OpenApi;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, ContentBuilder, InfoBuilder, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr,
    Required,
};
use utoipa::{PartialSchema as _, ToSchema};

use crate::endpoint::{EndpointInfo, Input, Method, Output};
use crate::error::{ErrorBody, ErrorCode, FieldError};
use crate::ws::{ClientAction, ServerEvent};

/// Named schemas by name.
type Components = BTreeMap<String, RefOr<Schema>>;

/// Where the named schemas live.
const SCHEMAS: &str = "#/components/schemas/";

/// The extension that describes the WebSocket API, which OpenAPI has no place for.
const WEBSOCKET_EXTENSION: &str = "x-websocket";

/// The WebSocket API: API Gateway routes each frame by its `action`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketApi {
    /// `$request.body.action`.
    pub route_selection_expression: String,
    /// Every action (a route each); any other frame goes to `$default`.
    pub actions: Vec<String>,
    /// The schema of a client frame.
    pub client_frame: Ref,
    /// The schema of a server frame.
    pub server_frame: Ref,
}

/// The component name a reference points at (`#/components/schemas/Name` → `Name`).
fn ref_name(schema: &RefOr<Schema>) -> Option<&str> {
    match schema {
        RefOr::Ref(r) => r.ref_location.rsplit('/').next(),
        RefOr::T(_) => None,
    }
}

/// `(name, schema, required)` of every property of an object schema, following `allOf`, and `$ref` when
/// `components` are given.
fn properties(schema: &RefOr<Schema>, components: Option<&Components>) -> Vec<(String, RefOr<Schema>, bool)> {
    match schema {
        RefOr::Ref(r) => match (components, r.ref_location.strip_prefix(SCHEMAS)) {
            (Some(all), Some(name)) => all.get(name).map(|s| properties(s, components)).unwrap_or_default(),
            _ => Vec::new(),
        },
        RefOr::T(Schema::AllOf(all)) => all.items.iter().flat_map(|part| properties(part, components)).collect(),
        RefOr::T(Schema::Object(object)) => object
            .properties
            .iter()
            .map(|(name, prop)| (name.clone(), prop.clone(), object.required.contains(name)))
            .collect(),
        RefOr::T(_) => Vec::new(),
    }
}

/// The names of the `{param}` segments of a path template.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

/// A schema's description; for a composite without one (a nullable reference is `oneOf: [null, $ref]`) the
/// first of its parts'.
fn description(schema: &RefOr<Schema>) -> &str {
    let own = match schema {
        RefOr::Ref(r) => Some(r.description.as_str()),
        RefOr::T(Schema::Object(o)) => o.description.as_deref(),
        RefOr::T(Schema::Array(a)) => a.description.as_deref(),
        RefOr::T(Schema::OneOf(o)) => o.description.as_deref(),
        RefOr::T(Schema::AllOf(a)) => a.description.as_deref(),
        RefOr::T(Schema::AnyOf(a)) => a.description.as_deref(),
        RefOr::T(_) => None,
    };
    let parts: &[RefOr<Schema>] = match schema {
        RefOr::T(Schema::OneOf(o)) => &o.items,
        RefOr::T(Schema::AllOf(a)) => &a.items,
        RefOr::T(Schema::AnyOf(a)) => &a.items,
        _ => &[],
    };
    own.into_iter().chain(parts.iter().map(description)).find(|d| !d.is_empty()).unwrap_or_default()
}

fn object(props: &[(String, RefOr<Schema>, bool)]) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for (name, schema, required) in props {
        object = object.property(name, schema.clone());
        if *required {
            object = object.required(name);
        }
    }
    RefOr::T(Schema::Object(object.build()))
}

fn json_content(schema: RefOr<Schema>) -> Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Put => HttpMethod::Put,
        Method::Delete => HttpMethod::Delete,
    }
}

fn operation(e: &EndpointInfo, components: &Components) -> Operation {
    let request = (e.request_schema)();
    let props = properties(&request, Some(components));
    let in_path: Vec<&str> = path_params(e.path).collect();
    let mut parameters: Vec<Parameter> = in_path
        .iter()
        .map(|name| {
            let schema = props.iter().find(|p| p.0 == *name).map_or_else(
                || RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).build())),
                |p| p.1.clone(),
            );
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(schema))
                .build()
        })
        .collect();
    let fields: Vec<(String, RefOr<Schema>, bool)> =
        props.iter().filter(|p| !in_path.contains(&p.0.as_str())).cloned().collect();
    if matches!(e.input, Input::Query | Input::QueryOrJson) {
        parameters.extend(fields.iter().map(|(name, schema, required)| {
            let about = description(schema);
            let required = if *required && e.input == Input::Query { Required::True } else { Required::False };
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(required)
                .description((!about.is_empty()).then_some(about))
                .schema(Some(schema.clone()))
                .build()
        }));
    }
    let mut op = OperationBuilder::new()
        .operation_id(Some(e.operation_id))
        .summary(Some(e.summary))
        .tag(e.function)
        .parameters(Some(parameters));
    let body_schema = if in_path.is_empty() { request.clone() } else { object(&fields) };
    let body = match e.input {
        Input::Json => Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(body_schema)),
        ),
        Input::QueryOrJson => Some(
            RequestBodyBuilder::new()
                .required(Some(Required::False))
                .description(Some("The same fields as the query parameters, as a JSON object; the body wins."))
                .content("application/json", json_content(body_schema)),
        ),
        Input::Multipart => Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("multipart/form-data", json_content(body_schema)),
        ),
        Input::None | Input::Query => None,
    };
    op = op.request_body(body.map(RequestBodyBuilder::build));
    let success = match e.output {
        Output::Json => ResponseBuilder::new()
            .description("Success")
            .content("application/json", json_content((e.response_schema)())),
        Output::Html => {
            let page = RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).build()));
            ResponseBuilder::new().description("Success").content("text/html", json_content(page))
        }
        Output::Empty => ResponseBuilder::new().description("Success, no body"),
    };
    op = op.response(e.status.to_string(), success.build());
    let mut errors: Vec<ErrorCode> = e.errors.to_vec();
    errors.extend([
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
    ]);
    if e.auth {
        errors.extend([ErrorCode::NotAuthenticated, ErrorCode::InvalidToken]);
    }
    let mut statuses: Vec<u16> = errors.iter().map(|c| c.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let codes: Vec<&str> = errors.iter().filter(|c| c.status() == status).map(|c| c.as_str()).collect();
        let response = ResponseBuilder::new()
            .description(format!("Error: {}", codes.join(", ")))
            .content("application/json", json_content(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))));
        op = op.response(status.to_string(), response.build());
    }
    op = op.response("default", RefOr::<Response>::Ref(Ref::new("#/components/responses/Error")));
    if e.auth {
        op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    op.build()
}

/// The OpenAPI 3.1 document of `endpoints` (normally [`crate::endpoints`]).
pub fn document(endpoints: &[EndpointInfo], version: &str) -> OpenApi {
    let mut named = Vec::new();
    for e in endpoints {
        (e.schemas)(&mut named);
    }
    named.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    ErrorBody::schemas(&mut named);
    named.push((FieldError::name().into_owned(), FieldError::schema()));
    named.push((<ClientAction as ToSchema>::name().into_owned(), ClientAction::schema()));
    ClientAction::schemas(&mut named);
    named.push((<ServerEvent as ToSchema>::name().into_owned(), ServerEvent::schema()));
    ServerEvent::schemas(&mut named);
    let mut components = Components::new();
    for (name, schema) in named {
        // Two types of one name would leave one of them documented as the other.
        if let Some(previous) = components.get(&name) {
            debug_assert!(previous == &schema, "two schemas are named {name}");
        }
        components.insert(name, schema);
    }
    let mut paths = PathsBuilder::new();
    for e in endpoints {
        paths = paths.path(e.path, PathItem::new(http_method(e.method), operation(e, &components)));
    }
    let info = InfoBuilder::new()
        .title("Messenger Backend API")
        .version(version)
        .description(Some(
            "REST API of the end-to-end encrypted messenger backend. Errors are {\"detail\", \"code\"}; real-time \
             is a WebSocket API (see x-websocket, ClientAction and ServerEvent).",
        ))
        .build();
    let error = ResponseBuilder::new()
        .description("Error")
        .content("application/json", json_content(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
        .build();
    let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
    let components = ComponentsBuilder::new()
        .schemas_from_iter(components)
        .response("Error", error)
        .security_scheme("bearer", SecurityScheme::Http(bearer))
        .build();
    let websocket = WebSocketApi {
        route_selection_expression: "$request.body.action".into(),
        actions: ClientAction::NAMES.iter().map(|a| (*a).to_owned()).collect(),
        client_frame: Ref::from_schema_name(<ClientAction as ToSchema>::name()),
        server_frame: Ref::from_schema_name(<ServerEvent as ToSchema>::name()),
    };
    let extensions =
        ExtensionsBuilder::new().add(WEBSOCKET_EXTENSION, serde_json::to_value(websocket).unwrap_or_default()).build();
    let mut doc = OpenApiBuilder::new().info(info).paths(paths.build()).components(Some(components)).build();
    doc.extensions = Some(extensions);
    doc
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The wire text of a serializable name (a type, a format, an OpenAPI version).
fn wire_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// An anchor id for a component schema (names are identifiers, but escape anyway).
fn schema_anchor(name: &str) -> String {
    format!("schema-{}", escape(name))
}

/// The types a schema type allows.
fn types(schema_type: &SchemaType) -> Vec<&Type> {
    match schema_type {
        SchemaType::Type(t) => vec![t],
        SchemaType::Array(ts) => ts.iter().collect(),
        SchemaType::AnyValue => Vec::new(),
    }
}

/// The type of a schema as HTML: named types link to their definition, lists are `[T]`, nullable
/// types `T | null`, enums list their values.
fn type_html(schema: &RefOr<Schema>) -> String {
    if let Some(name) = ref_name(schema) {
        return format!("<a href=\"#{}\">{}</a>", schema_anchor(name), escape(name));
    }
    let RefOr::T(schema) = schema else { return "any".into() };
    let (parts, sep) = match schema {
        Schema::OneOf(o) => (&o.items, " | "),
        Schema::AnyOf(a) => (&a.items, " | "),
        Schema::AllOf(a) => (&a.items, " &amp; "),
        Schema::Array(array) => {
            let item = match &array.items {
                ArrayItems::RefOrSchema(item) => type_html(item),
                ArrayItems::False => "nothing".into(),
            };
            let rendered: Vec<String> = types(&array.schema_type)
                .into_iter()
                .map(|t| if *t == Type::Array { format!("[{item}]") } else { escape(&wire_text(t)) })
                .collect();
            return if rendered.is_empty() { format!("[{item}]") } else { rendered.join(" | ") };
        }
        Schema::Object(object) => {
            if let Some(values) = &object.enum_values {
                let values: Vec<String> =
                    values.iter().map(|v| format!("<code>{}</code>", escape(&v.to_string()))).collect();
                return format!("one of {}", values.join(", "));
            }
            let rendered: Vec<String> = types(&object.schema_type)
                .into_iter()
                .map(|t| match t {
                    Type::Object if !object.properties.is_empty() => "object (fields below)".into(),
                    other => match &object.format {
                        Some(format) => format!("{} ({})", escape(&wire_text(other)), escape(&wire_text(format))),
                        None => escape(&wire_text(other)),
                    },
                })
                .collect();
            return if rendered.is_empty() { "any".into() } else { rendered.join(" | ") };
        }
        _ => return "any".into(),
    };
    parts.iter().map(type_html).collect::<Vec<_>>().join(sep)
}

/// A table of an object schema's fields (not following `$ref`), or nothing when it has none.
fn fields_table(html: &mut String, schema: &RefOr<Schema>) {
    let fields = properties(schema, None);
    if fields.is_empty() {
        return;
    }
    html.push_str("<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>");
    for (name, prop, required) in fields {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            type_html(&prop),
            if required { "yes" } else { "no" },
            escape(description(&prop)),
        );
    }
    html.push_str("</table>");
}

/// A schema as the operation shows it: its name (linked) and the fields of an inline object.
fn schema_block(html: &mut String, schema: Option<&RefOr<Schema>>) {
    let Some(schema) = schema else { return };
    let _ = write!(html, "<p>Schema: {}</p>", type_html(schema));
    if ref_name(schema).is_none() {
        fields_table(html, schema);
    }
}

/// The first media type of a `content` map, with its schema.
fn media<'a>(mut content: impl Iterator<Item = (&'a String, &'a Content)>, html: &mut String) {
    if let Some((media_type, entry)) = content.next() {
        let _ = write!(html, "<p>Content type: <code>{}</code></p>", escape(media_type));
        schema_block(html, entry.schema.as_ref());
    }
}

/// The error codes of an error response's description (`Error: a, b`), each with its default detail.
fn error_codes(description: &str) -> String {
    let codes = description.strip_prefix("Error: ").unwrap_or(description);
    codes
        .split(", ")
        .filter(|c| !c.is_empty())
        .map(|code| match ErrorCode::ALL.iter().find(|c| c.as_str() == code) {
            Some(c) => format!("<code>{}</code> ({})", escape(code), escape(c.detail())),
            None => format!("<code>{}</code>", escape(code)),
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn operation_html(html: &mut String, method: &str, path: &str, op: &Operation) {
    let id = op.operation_id.as_deref().unwrap_or_default();
    let _ = write!(
        html,
        "<section class=\"op\" id=\"op-{}\"><h3><span class=\"method\">{}</span> <code>{}</code></h3><p>{}</p>",
        escape(id),
        escape(&method.to_ascii_uppercase()),
        escape(path),
        escape(op.summary.as_deref().unwrap_or_default()),
    );
    let auth = if op.security.is_some() { "bearer token (<code>Authorization: Bearer …</code>)" } else { "none" };
    let _ = write!(html, "<p>Operation <code>{}</code>. Auth: {auth}.</p>", escape(id));

    if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
        html.push_str(
            "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th>\
             <th>Description</th></tr>",
        );
        for p in params {
            let about = match (&p.description, &p.schema) {
                (Some(text), _) => text.as_str(),
                (None, Some(schema)) => description(schema),
                (None, None) => "",
            };
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.name),
                escape(&wire_text(&p.parameter_in)),
                p.schema.as_ref().map_or_else(|| "any".into(), type_html),
                if p.required == Required::True { "yes" } else { "no" },
                escape(about),
            );
        }
        html.push_str("</table>");
    }

    if let Some(body) = &op.request_body {
        let optional = if body.required == Some(Required::True) { "" } else { " (optional)" };
        let _ = write!(html, "<h4>Request body{optional}</h4>");
        if let Some(about) = body.description.as_deref().filter(|d| !d.is_empty()) {
            let _ = write!(html, "<p>{}</p>", escape(about));
        }
        media(body.content.iter(), html);
    }

    html.push_str("<h4>Responses</h4>");
    let responses = &op.responses.responses;
    for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('2')) {
        let RefOr::T(response) = response else { continue };
        let _ = write!(html, "<p><b>{}</b> {}</p>", escape(status), escape(&response.description));
        media(response.content.iter(), html);
    }
    let errors: Vec<(&String, &Response)> = responses
        .iter()
        .filter(|(s, _)| !s.starts_with('2') && s.as_str() != "default")
        .filter_map(|(s, r)| match r {
            RefOr::T(r) => Some((s, r)),
            RefOr::Ref(_) => None,
        })
        .collect();
    if !errors.is_empty() {
        html.push_str("<table><tr><th>Error status</th><th>Codes (default detail)</th></tr>");
        for (status, response) in errors {
            let _ = write!(html, "<tr><td>{}</td><td>{}</td></tr>", escape(status), error_codes(&response.description));
        }
        html.push_str("</table><p>Errors are <a href=\"#schema-ErrorBody\">ErrorBody</a> objects.</p>");
    }
    html.push_str("</section>");
}

/// Every operation of a path item, by method name (in the order of the JSON document's keys).
fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("delete", &item.delete),
        ("get", &item.get),
        ("head", &item.head),
        ("options", &item.options),
        ("patch", &item.patch),
        ("post", &item.post),
        ("put", &item.put),
        ("trace", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op.as_ref()?)))
}

/// Renders an OpenAPI document as a self-contained HTML page: every operation with method, path, summary,
/// auth, parameters, request body and response schemas and error codes, the WebSocket actions, then every
/// named schema.
pub fn render_html(doc: &OpenApi) -> String {
    let title = match doc.info.title.as_str() {
        "" => "API",
        title => title,
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{padding:.3em .8em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}}\
         code{{background:#f3f3f3;padding:0 .2em}}.op{{border-top:2px solid #888;margin-top:1.5em}}\
         .method{{display:inline-block;min-width:4.5em;font-family:monospace}}</style></head><body>\
         <h1>{title}</h1><p>Version {version}. {description}</p>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {openapi})</p>",
        title = escape(title),
        version = escape(&doc.info.version),
        description = escape(doc.info.description.as_deref().unwrap_or_default()),
        openapi = escape(&wire_text(&doc.openapi)),
    );
    let operations: Vec<(&str, &str, &Operation)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| operations(item).map(move |(method, op)| (method, path.as_str(), op)))
        .collect();

    html.push_str("<h2>Operations</h2><table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Auth</th></tr>");
    for (method, path, op) in &operations {
        let _ = write!(
            html,
            "<tr><td><b>{}</b></td><td><a href=\"#op-{}\"><code>{}</code></a></td><td>{}</td><td>{}</td></tr>",
            escape(&method.to_ascii_uppercase()),
            escape(op.operation_id.as_deref().unwrap_or_default()),
            escape(path),
            escape(op.summary.as_deref().unwrap_or_default()),
            if op.security.is_some() { "bearer" } else { "—" },
        );
    }
    html.push_str("</table>");

    let websocket = doc.extensions.as_ref().and_then(|e| e.get(WEBSOCKET_EXTENSION));
    if let Some(ws) = websocket.and_then(|ws| serde_json::from_value::<WebSocketApi>(ws.clone()).ok()) {
        let actions: Vec<String> = ws.actions.iter().map(|a| format!("<code>{}</code>", escape(a))).collect();
        let _ = write!(
            html,
            "<h2>WebSocket</h2><p>Frames are routed by <code>{}</code>; actions: {}. Any other frame is answered \
             with an <code>error</code> event.</p><p>Client frames: {}. Server frames: {}.</p>",
            escape(&ws.route_selection_expression),
            actions.join(", "),
            type_html(&RefOr::Ref(ws.client_frame)),
            type_html(&RefOr::Ref(ws.server_frame)),
        );
    }

    for (method, path, op) in &operations {
        operation_html(&mut html, method, path, op);
    }

    html.push_str("<h2>Schemas</h2>");
    for (name, schema) in doc.components.iter().flat_map(|c| &c.schemas) {
        let _ = write!(html, "<section id=\"{}\"><h3>{}</h3>", schema_anchor(name), escape(name));
        let about = description(schema);
        if !about.is_empty() {
            let _ = write!(html, "<p>{}</p>", escape(about));
        }
        if properties(schema, None).is_empty() {
            let _ = write!(html, "<p>Type: {}</p>", type_html(schema));
        } else {
            fields_table(&mut html, schema);
        }
        html.push_str("</section>");
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn doc() -> Value {
        serde_json::to_value(document(&crate::endpoints(), "test")).unwrap()
    }

    #[test]
    fn every_operation_has_request_and_response_schemas() {
        let doc = doc();
        for e in crate::endpoints() {
            let op = &doc["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["operationId"], e.operation_id);
            let success = &op["responses"][e.status.to_string()];
            match e.output {
                Output::Json => assert!(success["content"]["application/json"]["schema"].is_object(), "{e:?}"),
                Output::Html => assert!(success["content"]["text/html"].is_object(), "{e:?}"),
                Output::Empty => assert!(success.get("content").is_none(), "{e:?}"),
            }
            if matches!(e.input, Input::Json | Input::QueryOrJson | Input::Multipart) {
                assert!(op["requestBody"]["content"].is_object(), "{e:?}");
            }
            for name in path_params(e.path) {
                let p = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
                assert_eq!(p["in"], "path", "{e:?}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {target}");
        }
    }

    #[test]
    fn lists_are_arrays_of_their_item_type() {
        let doc = doc();
        assert!(doc["components"]["schemas"].get("Vec").is_none());
        let users = &doc["paths"]["/users"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(users["type"], "array");
        assert!(users["items"]["properties"]["is_deleted"].is_object(), "{users}");
        let media = &doc["paths"]["/chats/{target_user_id}/media"]["get"]["responses"]["200"]["content"];
        assert!(media["application/json"]["schema"]["items"]["properties"]["media_url"].is_object());
    }

    #[test]
    fn the_websocket_actions_are_listed_with_the_frame_schemas() {
        let doc = doc();
        let ws = &doc["x-websocket"];
        assert_eq!(ws["actions"], json!(ClientAction::NAMES));
        let client = &doc["components"]["schemas"]["ClientAction"];
        let tags: Vec<&Value> =
            client["oneOf"].as_array().unwrap().iter().map(|v| &v["properties"]["action"]).collect();
        assert_eq!(tags.len(), ClientAction::NAMES.len(), "{client}");
        for name in ClientAction::NAMES {
            assert!(client.to_string().contains(&format!("\"{name}\"")), "{name} in {client}");
        }
        assert!(doc["components"]["schemas"]["ServerEvent"]["oneOf"].is_array());
    }

    #[test]
    fn path_ids_are_integers_and_bodies_exclude_path_fields() {
        let doc = doc();
        let op = &doc["paths"]["/users/me/themes/{theme_id}"]["put"];
        assert_eq!(op["parameters"][0]["schema"]["type"], "integer");
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"].get("theme_id").is_none());
        assert!(body["properties"].get("primary_color").is_some());
    }
    #[test]
    fn fields_carry_their_patterns_lengths_and_closed_sets() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let field = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
        assert_eq!(field("RegisterRequest", "phone")["pattern"], "^\\+?[0-9]{7,15}$");
        assert_eq!(field("RegisterRequest", "first_name")["maxLength"], 64);
        assert_eq!(field("RegisterRequest", "password")["minLength"], 8);
        assert_eq!(field("SetUsernameRequest", "new_username")["pattern"], "^[A-Za-z][A-Za-z0-9_]{4,31}$");
        assert!(field("ThemeFields", "primary_color")["pattern"].as_str().unwrap().contains("0[xX]"));
        assert_eq!(field("Theme", "text_color")["pattern"], "^[0-9]{1,10}$");
        assert_eq!(field("UploadKeysRequest", "identity_key")["pattern"], "^[A-Za-z0-9+/]*={0,2}$");
        assert_eq!(field("SetBioRequest", "bio")["maxLength"], 500);
        assert_eq!(schemas["Brightness"]["enum"], json!(["light", "dark"]));
        assert_eq!(schemas["AvatarFrameId"]["enum"], json!(["none", "fire", "rainbow", "purple"]));
        assert!(field("SetAvatarFrameRequest", "frame").to_string().contains("AvatarFrameId"));
        assert!(field("UpdatePrivacyRequest", "phone_visibility").to_string().contains("PhoneVisibility"));
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_page_shows_every_operation_with_its_details() {
        let html = render_html(&document(&crate::endpoints(), "test"));
        for e in crate::endpoints() {
            assert!(html.contains(&format!("<code>{}</code>", e.path)), "{e:?}");
            assert!(html.contains(&format!("id=\"op-{}\"", e.operation_id)), "{e:?}");
        }
        // Parameters with where they go and their type, body schemas with their fields, responses, errors.
        let devices = html.split("id=\"op-list_devices\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(devices.contains("<td><code>user_id</code></td><td>path</td><td>integer (int64)</td>"), "{devices}");
        assert!(devices.contains("bearer token"));
        assert!(devices.contains("<code>user_not_found</code> (User not found)"), "{devices}");
        assert!(devices.contains("<p><b>200</b> Success</p><p>Content type: <code>application/json</code></p>"));
        let claim = html.split("id=\"op-claim_keys\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(claim.contains("<a href=\"#schema-ClaimKeysRequest\">ClaimKeysRequest</a>"), "{claim}");
        assert!(claim.contains("application/json"));
        assert!(html.contains("id=\"schema-ClaimKeysRequest\""));
        assert!(html.contains("<code>device_ids</code>"));
        assert!(html.contains("A one-time key handed out to this caller only"), "nullable references keep their text");
        let ws = html.split("<h2>WebSocket</h2>").nth(1).unwrap().split("</p><p>").next().unwrap();
        for action in ClientAction::NAMES {
            assert!(ws.contains(&format!("<code>{action}</code>")), "{action} in {ws}");
        }
        assert!(html.contains("<a href=\"#schema-ClientAction\">ClientAction</a>"));
        assert!(html.contains("id=\"schema-ServerEvent\""));
        let themes = html.split("id=\"schema-Brightness\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(themes.contains("one of <code>&quot;light&quot;</code>, <code>&quot;dark&quot;</code>"), "{themes}");
        let health = html.split("id=\"op-health\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(health.contains("Auth: none"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("http://") && !html.contains("https://"), "no third parties");
    }

    #[test]
    fn everything_from_the_document_is_escaped() {
        let doc: OpenApi = serde_json::from_str(
            r##"{
            "openapi": "3.1.0",
            "info": {"title": "<T>", "version": "1", "description": "<script>alert(1)</script>"},
            "paths": {"/x/{a}": {"get": {"operationId": "o\"p", "summary": "<b>bold</b>",
                "parameters": [{"name": "<a>", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"<f>": {"type": "string", "description": "<d>"}}}}}},
                    "400": {"description": "Error: <c>"}}}}},
            "components": {"schemas": {"<S>": {"type": "string", "enum": ["<e>"]}}},
            "x-websocket": {"routeSelectionExpression": "<r>", "actions": ["<w>"],
                "clientFrame": {"$ref": "#/components/schemas/<C>"}, "serverFrame": {"$ref": "#/components/schemas/S"}}
        }"##,
        )
        .unwrap();
        let html = render_html(&doc);
        for raw in ["<T>", "<script>", "<b>bold", "o\"p", "<a>", "<f>", "<d>", "<c>", "<S>", "<e>", "<r>", "<w>", "<C>"]
        {
            assert!(!html.contains(raw), "{raw} unescaped");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<code>/x/{a}</code>"));
        assert!(html.contains("<code>&lt;w&gt;</code>"), "the WebSocket section is rendered");
    }
}
