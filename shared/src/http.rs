//! HTTP glue shared by the functions: routing on method + path, query/body parameters, multipart, responses.

use std::collections::HashMap;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::routes::{ROUTES, Route};

/// A JSON response with `status`. A text body, so Lambda passes it through instead of base64-encoding it
/// (which would grow it by a third against the 6 MB response limit).
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .unwrap_or_default()
}

/// A 200 JSON response.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// A 204 response without a body.
pub fn no_content() -> Response<Body> {
    Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).unwrap_or_default()
}

/// The route a request matched, with its path parameters.
#[derive(Debug)]
pub struct Matched {
    /// The matched route of [`ROUTES`].
    pub route: &'static Route,
    /// Path parameters by name, percent-decoded.
    pub params: HashMap<&'static str, String>,
}

impl Matched {
    /// An integer path parameter; anything else is a 422.
    pub fn int(&self, name: &str) -> Result<i64, ApiError> {
        self.params
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| ApiError::field(name, "must be an integer"))
    }

    /// A string path parameter.
    pub fn str(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

/// Finds the route of `function` for the request's method and path: 404 when no path matches, 405 when the
/// path exists with other methods.
pub fn match_route(function: &str, method: &Method, path: &str) -> Result<Matched, ApiError> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let mut path_exists = false;
    for route in ROUTES.iter().filter(|r| r.function == function) {
        if let Some(params) = match_path(route.path, path) {
            if route.method == method.as_str() {
                return Ok(Matched { route, params: params.into_iter().collect() });
            }
            path_exists = true;
        }
    }
    Err(if path_exists { ApiError::MethodNotAllowed } else { ApiError::RouteNotFound })
}

/// Matches `path` against a route template (`/users/{user_id}/profile`, `{name+}` takes the rest);
/// returns the percent-decoded path parameters in order.
pub fn match_path<'a>(template: &'a str, path: &str) -> Option<Vec<(&'a str, String)>> {
    let parts: Vec<&str> = template.split('/').skip(1).collect();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let mut params = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            let rest = segs.get(i..).filter(|r| !r.is_empty())?.join("/");
            params.push((name, percent_decode(&rest)));
            return Some(params);
        }
        let seg = segs.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if seg.is_empty() {
                return None;
            }
            params.push((name, percent_decode(seg)));
        } else if part != seg {
            return None;
        }
    }
    (parts.len() == segs.len()).then_some(params)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Parses a query string (`a=1&b=x%20y`, `+` as space) into a map; the last value of a name wins.
pub fn parse_query(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " "));
        let v = percent_decode(&v.replace('+', " "));
        map.insert(k, Value::String(v));
    }
    map
}

/// Request parameters: query string merged with a JSON object body (the body wins), per API.md §1.
#[derive(Debug, Default)]
pub struct Params(pub Map<String, Value>);

impl Params {
    /// Query only.
    pub fn query(req: &Request) -> Self {
        Self(parse_query(req.uri().query().unwrap_or("")))
    }

    /// Query merged with the JSON body (if any); a body that is not a JSON object is a 422.
    pub fn query_and_body(req: &Request) -> Result<Self, ApiError> {
        let mut params = Self::query(req);
        if let Some(Value::Object(body)) = json_body(req)? {
            params.0.extend(body);
        }
        Ok(params)
    }

    /// JSON body only.
    pub fn body(req: &Request) -> Result<Self, ApiError> {
        Ok(match json_body(req)? {
            Some(Value::Object(body)) => Self(body),
            _ => Self::default(),
        })
    }

    /// Whether `name` is present (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A string parameter; numbers are accepted as their text, null is absent, anything else is a 422.
    pub fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::field(name, "must be a string")),
        }
    }

    /// A required string parameter.
    pub fn required_str(&self, name: &str) -> Result<String, ApiError> {
        self.str(name)?.ok_or_else(|| ApiError::field(name, "field required"))
    }

    /// A boolean: JSON `true`/`false` or the text `true`/`false`/`1`/`0`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::field(name, "must be a boolean")),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(ApiError::field(name, "must be a boolean")),
        }
    }

    /// An integer: a JSON integer or its decimal text.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| ApiError::field(name, "must be an integer")),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| ApiError::field(name, "must be an integer"))
            }
            Some(_) => Err(ApiError::field(name, "must be an integer")),
        }
    }

    /// A page size: `default` when absent, capped at `max`, below 1 (or not an integer) a 422.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.int("limit")? {
            None => Ok(default),
            Some(l) if l < 1 => Err(ApiError::field("limit", "must be at least 1")),
            Some(l) => Ok(l.min(max)),
        }
    }

    /// The raw JSON value of a parameter.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// The request body as bytes.
pub fn body_bytes(req: &Request) -> &[u8] {
    req.body().as_ref()
}

/// Parses the body as JSON; an empty body is `None`, invalid JSON is a 422.
pub fn json_body(req: &Request) -> Result<Option<Value>, ApiError> {
    let bytes = body_bytes(req);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|_| ApiError::field("body", "must be valid JSON"))
}

/// One file part of a multipart body.
#[derive(Debug)]
pub struct FilePart {
    /// Client file name, if given.
    pub filename: Option<String>,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// Extracts the part named `field` of a `multipart/form-data` body; a body that is not multipart, or a
/// missing part, is a 422.
pub fn multipart_file(req: &Request, field: &str) -> Result<FilePart, ApiError> {
    let content_type = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let missing = || ApiError::field(field, "a multipart/form-data file part is required");
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(missing());
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or_else(missing)?;
    let delimiter = format!("--{boundary}");
    let body = body_bytes(req);
    let mut pos = find(body, delimiter.as_bytes(), 0).ok_or_else(missing)?;
    loop {
        pos += delimiter.len();
        if body.get(pos..pos + 2) == Some(b"--") {
            return Err(missing());
        }
        let headers_start = pos + 2;
        let headers_end = find(body, b"\r\n\r\n", headers_start).ok_or_else(missing)?;
        let headers = String::from_utf8_lossy(&body[headers_start..headers_end]).into_owned();
        let data_start = headers_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start).ok_or_else(missing)?;
        let disposition =
            headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).unwrap_or_default();
        if disposition_param(disposition, "name").as_deref() == Some(field) {
            return Ok(FilePart {
                filename: disposition_param(disposition, "filename"),
                data: body[data_start..next].to_vec(),
            });
        }
        pos = next + 2;
    }
}

fn disposition_param(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The client's source IP as API Gateway reports it (never a client-supplied header).
pub fn source_ip(req: &Request) -> String {
    use lambda_http::RequestExt as _;
    use lambda_http::request::RequestContext;
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone().unwrap_or_default(),
        Some(RequestContext::WebSocket(ctx)) => ctx.identity.source_ip.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The `Authorization` header value, if any.
pub fn authorization(req: &Request) -> Option<&str> {
    req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> Request {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::Binary(body))
            .unwrap()
    }

    #[test]
    fn routes_match_on_method_and_path() {
        let m = match_route("users", &Method::GET, "/users/17/profile").unwrap();
        assert_eq!(m.route.path, "/users/{user_id}/profile");
        assert_eq!(m.int("user_id").unwrap(), 17);
        assert!(matches!(match_route("users", &Method::DELETE, "/me"), Err(ApiError::MethodNotAllowed)));
        assert!(matches!(match_route("users", &Method::GET, "/nope"), Err(ApiError::RouteNotFound)));
        assert!(matches!(match_route("auth", &Method::GET, "/me"), Err(ApiError::RouteNotFound)));
    }

    #[test]
    fn path_templates_match_segments() {
        assert_eq!(match_path("/users/{id}/profile", "/users/7/profile"), Some(vec![("id", "7".into())]));
        assert_eq!(match_path("/users/{id}/profile", "/users/7"), None);
        assert_eq!(match_path("/me", "/me"), Some(vec![]));
        assert_eq!(match_path("/", "/"), Some(vec![]));
        assert_eq!(match_path("/files/{key+}", "/files/a/b"), Some(vec![("key", "a/b".into())]));
        assert_eq!(match_path("/devices/{id}", "/devices/a%20b"), Some(vec![("id", "a b".into())]));
    }

    #[test]
    fn non_integer_path_ids_are_422() {
        let m = match_route("users", &Method::GET, "/users/abc/profile").unwrap();
        assert!(matches!(m.int("user_id"), Err(ApiError::Validation(_))));
    }

    #[test]
    fn body_wins_over_query() {
        let req = request("PUT", "/x?bio=query&a=1", "application/json", br#"{"bio":"body"}"#.to_vec());
        let p = Params::query_and_body(&req).unwrap();
        assert_eq!(p.str("bio").unwrap().as_deref(), Some("body"));
        assert_eq!(p.int("a").unwrap(), Some(1));
    }

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = parse_query("query=a%20b+c&x=%D0%BF");
        assert_eq!(q["query"], "a b c");
        assert_eq!(q["x"], "п");
    }

    #[test]
    fn booleans_accept_the_contract_spellings() {
        let p = Params(parse_query("a=true&b=0&c=yes"));
        assert_eq!(p.bool("a").unwrap(), Some(true));
        assert_eq!(p.bool("b").unwrap(), Some(false));
        assert!(p.bool("c").is_err());
    }

    #[test]
    fn multipart_file_part_is_found() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--XyZ--\r\n";
        let req = request("POST", "/upload", "multipart/form-data; boundary=XyZ", body.to_vec());
        let part = multipart_file(&req, "file").unwrap();
        assert_eq!(part.filename.as_deref(), Some("a.png"));
        assert_eq!(part.data, b"\x89PNG\r\n\x1a\n");
        assert!(multipart_file(&req, "missing").is_err());
        let req = request("POST", "/upload", "application/json", b"{}".to_vec());
        assert!(multipart_file(&req, "file").is_err());
    }
}
