//! What every REST endpoint declares next to its types: method, path, function, auth, input form, success
//! status and the errors it can answer (the ruma pattern: metadata beside the request/response pair).

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

/// HTTP methods of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The upper-case name (`"GET"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// Where an endpoint reads its input from (path parameters always come from the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing but path parameters.
    None,
    /// A JSON object body.
    Json,
    /// Query parameters (what the original client sends) or a JSON body with the same names; the body wins.
    QueryOrJson,
    /// Query parameters only.
    Query,
    /// `multipart/form-data` with a `file` part.
    Multipart,
}

/// What a success response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A JSON body.
    Json,
    /// No body (204).
    Empty,
    /// An HTML page (the response type serializes to the page's text).
    Html,
}

/// One REST endpoint of the contract.
pub trait Endpoint {
    /// The Lambda function (binary) serving it, as named in `template.yaml`.
    const FUNCTION: &'static str;
    /// Method.
    const METHOD: Method;
    /// Path template with `{param}` segments, as in `template.yaml`.
    const PATH: &'static str;
    /// Operation id (also the handler's name).
    const OPERATION_ID: &'static str;
    /// One-line summary.
    const SUMMARY: &'static str;
    /// Whether a bearer token is required.
    const AUTH: bool;
    /// Success status.
    const STATUS: u16;
    /// Where the input comes from.
    const INPUT: Input;
    /// What the success response carries.
    const OUTPUT: Output;
    /// The contract errors it answers besides the generic ones (401, 404/405 route, 422, 429, 500).
    const ERRORS: &'static [crate::ErrorCode];
    /// Path parameters, query and body fields, in one type.
    type Request: ToSchema;
    /// The success body.
    type Response: ToSchema;
}

/// An endpoint's metadata as a value, with its schemas, for routing tables and the OpenAPI document.
#[derive(Clone, Copy)]
pub struct EndpointInfo {
    /// See [`Endpoint::FUNCTION`].
    pub function: &'static str,
    /// See [`Endpoint::METHOD`].
    pub method: Method,
    /// See [`Endpoint::PATH`].
    pub path: &'static str,
    /// See [`Endpoint::OPERATION_ID`].
    pub operation_id: &'static str,
    /// See [`Endpoint::SUMMARY`].
    pub summary: &'static str,
    /// See [`Endpoint::AUTH`].
    pub auth: bool,
    /// See [`Endpoint::STATUS`].
    pub status: u16,
    /// See [`Endpoint::INPUT`].
    pub input: Input,
    /// See [`Endpoint::OUTPUT`].
    pub output: Output,
    /// See [`Endpoint::ERRORS`].
    pub errors: &'static [crate::ErrorCode],
    /// The request type's schema (a `$ref` for named types).
    pub request_schema: fn() -> RefOr<Schema>,
    /// The response type's schema.
    pub response_schema: fn() -> RefOr<Schema>,
    /// Collects the named schemas both types refer to.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for EndpointInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method.as_str(), self.path, self.operation_id)
    }
}

/// Whether `T` is a named component; containers (`Vec`, `Option`) and primitives are inlined.
fn is_component<T: ToSchema>() -> bool {
    let name = T::name();
    name.starts_with(|c: char| c.is_ascii_uppercase()) && !matches!(name.as_ref(), "Vec" | "Option" | "String")
}

fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    if is_component::<T>() { RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name())) } else { T::schema() }
}

fn collect<E: Endpoint>(out: &mut Vec<(String, RefOr<Schema>)>) {
    if is_component::<E::Request>() {
        out.push((E::Request::name().into_owned(), <E::Request as PartialSchema>::schema()));
    }
    if is_component::<E::Response>() {
        out.push((E::Response::name().into_owned(), <E::Response as PartialSchema>::schema()));
    }
    E::Request::schemas(out);
    E::Response::schemas(out);
}

/// The metadata of `E` as a value.
pub fn info<E: Endpoint>() -> EndpointInfo {
    EndpointInfo {
        function: E::FUNCTION,
        method: E::METHOD,
        path: E::PATH,
        operation_id: E::OPERATION_ID,
        summary: E::SUMMARY,
        auth: E::AUTH,
        status: E::STATUS,
        input: E::INPUT,
        output: E::OUTPUT,
        errors: E::ERRORS,
        request_schema: schema_ref::<E::Request>,
        response_schema: schema_ref::<E::Response>,
        schemas: collect::<E>,
    }
}

/// Declares an endpoint type and its [`Endpoint`] impl.
#[macro_export]
macro_rules! endpoint {
    (
        $(#[$doc:meta])*
        $name:ident: $method:ident $path:literal in $function:literal {
            op: $op:literal,
            summary: $summary:literal,
            auth: $auth:literal,
            status: $status:literal,
            input: $input:ident,
            output: $output:ident,
            request: $req:ty,
            response: $resp:ty,
            errors: [$($err:ident),* $(,)?] $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl $crate::Endpoint for $name {
            const FUNCTION: &'static str = $function;
            const METHOD: $crate::Method = $crate::Method::$method;
            const PATH: &'static str = $path;
            const OPERATION_ID: &'static str = $op;
            const SUMMARY: &'static str = $summary;
            const AUTH: bool = $auth;
            const STATUS: u16 = $status;
            const INPUT: $crate::Input = $crate::Input::$input;
            const OUTPUT: $crate::Output = $crate::Output::$output;
            const ERRORS: &'static [$crate::ErrorCode] = &[$($crate::ErrorCode::$err),*];
            type Request = $req;
            type Response = $resp;
        }
    };
}

/// The request of an endpoint without input, or the response of one without a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct Empty {}
