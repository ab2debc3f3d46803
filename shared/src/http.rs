//! HTTP glue shared by the functions: typed input from path, query and body, multipart, responses.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer, value::MapDeserializer};
use serde_json::Value;
use wire::{FieldError, FileUpload, Input};

use crate::error::ApiError;

pub use crate::response::json_response;

/// A 200 JSON response.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// A 204 response without a body.
pub fn no_content() -> Response<Body> {
    Response::builder().status(StatusCode::NO_CONTENT).body(Body::Empty).unwrap_or_default()
}

/// How specific a route template is, for choosing among routes that match the same path as API Gateway does:
/// literal segments beat `{param}` segments, which beat a greedy `{name+}`, compared segment by segment from
/// the left. Sort routes by this key, descending, and the first match is the most specific one.
pub fn specificity(template: &str) -> Vec<u8> {
    template
        .split('/')
        .skip(1)
        .map(|seg| match seg.strip_prefix('{') {
            Some(param) if param.ends_with("+}") => 0,
            Some(_) => 1,
            None => 2,
        })
        .collect()
}

/// Matches `path` against a route template (`/users/{user_id}/profile`, `{name+}` takes the rest);
/// returns the percent-decoded path parameters in order.
pub fn match_path<'a>(template: &'a str, path: &str) -> Option<Vec<(&'a str, String)>> {
    // Segment by segment, without collecting either side: every request is matched against its function's
    // routes in turn, and this ran for each of them (`perf` of `GET /me`: 5 % of the stack's CPU).
    let mut rest = Some(path.split_once('/')?.1);
    let mut params = Vec::new();
    for part in template.split('/').skip(1) {
        let remaining = rest?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            params.push((name, percent_decode(remaining)));
            return Some(params);
        }
        let (seg, next) = match remaining.split_once('/') {
            Some((seg, next)) => (seg, Some(next)),
            None => (remaining, None),
        };
        rest = next;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if seg.is_empty() {
                return None;
            }
            params.push((name, percent_decode(seg)));
        } else if part != seg {
            return None;
        }
    }
    rest.is_none().then_some(params)
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A value from the path or the query string: text that becomes the type the field asks for, so `limit=50`
/// is an integer and `for_everyone=1` a boolean (API.md §1: `true`/`false`, also `1`/`0`).
struct Text(String);

impl Text {
    fn parse<T: std::str::FromStr>(&self, expected: &str) -> Result<T, serde_json::Error> {
        self.0.trim().parse().map_err(|_| serde::de::Error::custom(format!("must be {expected}")))
    }
}

macro_rules! text_number {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {
        $(fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.$visit(self.parse::<$ty>(if stringify!($ty).starts_with('f') { "a number" } else { "an integer" })?)
        })*
    };
}

impl<'de> serde::Deserializer<'de> for Text {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            _ => Err(serde::de::Error::custom("must be a boolean")),
        }
    }

    text_number! {
        deserialize_i8 => visit_i8(i8), deserialize_i16 => visit_i16(i16), deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64), deserialize_u8 => visit_u8(u8), deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32), deserialize_u64 => visit_u64(u64), deserialize_f32 => visit_f32(f32),
        deserialize_f64 => visit_f64(f64),
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(IntoDeserializer::<serde_json::Error>::into_deserializer(self.0))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// One input value: text from the path or query, or JSON from the body (strict: a number is not a string).
enum Source {
    Text(Text),
    Json(Value),
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Source {
    type Deserializer = SourceDeserializer;
    fn into_deserializer(self) -> SourceDeserializer {
        SourceDeserializer(self)
    }
}

struct SourceDeserializer(Source);

macro_rules! forward_source {
    ($($method:ident),* $(,)?) => {
        $(fn $method<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0 {
                Source::Text(t) => serde::Deserializer::$method(t, visitor),
                Source::Json(v) => serde::Deserializer::$method(v, visitor),
            }
        })*
    };
}

impl<'de> serde::Deserializer<'de> for SourceDeserializer {
    type Error = serde_json::Error;

    forward_source! {
        deserialize_any, deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64,
        deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64, deserialize_f32, deserialize_f64,
        deserialize_option, deserialize_str, deserialize_string, deserialize_seq, deserialize_map,
        deserialize_identifier, deserialize_ignored_any, deserialize_char, deserialize_bytes, deserialize_byte_buf,
        deserialize_unit,
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Source::Text(t) => t.deserialize_newtype_struct(name, visitor),
            Source::Json(v) => v.deserialize_newtype_struct(name, visitor),
        }
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Source::Text(t) => t.deserialize_enum(name, variants, visitor),
            Source::Json(v) => v.deserialize_enum(name, variants, visitor),
        }
    }

    serde::forward_to_deserialize_any! { i128 u128 unit_struct tuple tuple_struct struct }
}

/// Turns a serde error at `path` into the 422 entry naming the field.
fn field_error(path: &serde_path_to_error::Path, err: &serde_json::Error) -> FieldError {
    let text = err.to_string();
    let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
    if let Some(name) = text.strip_prefix("missing field `").and_then(|t| t.strip_suffix('`')) {
        let prefix = path.to_string();
        let field = if prefix == "." { name.to_owned() } else { format!("{prefix}.{name}") };
        return FieldError { field, message: "field required".into() };
    }
    let field = match path.to_string() {
        root if root == "." => "body".to_owned(),
        field => field,
    };
    FieldError { field, message: text }
}

/// Parses the body as JSON: an empty body is `None`, invalid JSON a 422 naming `body`.
pub fn json_body(req: &Request) -> Result<Option<Value>, ApiError> {
    let bytes = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|_| ApiError::field("body", "must be valid JSON"))
}

/// Decodes an endpoint's input from its path parameters, the query string and the JSON body, as
/// [`Input`] says: for query-or-body endpoints the body wins over the query; path parameters always win.
/// Types are strict: a JSON number where a string is expected is a 422 naming the field; query and path
/// values are text converted to the field's type.
pub fn decode_input<T: DeserializeOwned>(
    input: Input,
    req: &Request,
    path: Vec<(&'static str, String)>,
) -> Result<T, ApiError> {
    let mut fields: Vec<(String, Source)> = Vec::new();
    if matches!(input, Input::Query | Input::QueryOrJson) {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
            .map_err(|_| ApiError::field("query", "must be a valid query string"))?;
        for (name, value) in pairs {
            // The last value of a repeated name wins.
            fields.retain(|(n, _)| *n != name);
            fields.push((name, Source::Text(Text(value))));
        }
    }
    if matches!(input, Input::Json | Input::QueryOrJson) {
        match json_body(req)? {
            None => {}
            Some(Value::Object(body)) => {
                for (name, value) in body {
                    fields.retain(|(n, _)| *n != name);
                    fields.push((name, Source::Json(value)));
                }
            }
            Some(_) => return Err(ApiError::field("body", "must be a JSON object")),
        }
    }
    for (name, value) in path {
        fields.retain(|(n, _)| n != name);
        fields.push((name.to_owned(), Source::Text(Text(value))));
    }
    let deserializer = MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
    serde_path_to_error::deserialize(deserializer)
        .map_err(|e| ApiError::Validation(vec![field_error(e.path(), e.inner())]))
}

/// Extracts the part named `field` of a `multipart/form-data` body (with `multer`); a body that is not
/// multipart, is malformed, or lacks the part is a 422. Takes the request, so the body is not copied.
pub async fn multipart_file(req: Request, field: &str) -> Result<FileUpload, ApiError> {
    let missing = || ApiError::field(field, "a multipart/form-data file part is required");
    let content_type = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| missing())?;
    let body = match req.into_body() {
        Body::Binary(bytes) => bytes::Bytes::from(bytes),
        Body::Text(text) => bytes::Bytes::from(text),
        _ => bytes::Bytes::new(),
    };
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Some(part) = multipart.next_field().await.map_err(|_| missing())? {
        if part.name() == Some(field) {
            let filename = part.file_name().map(str::to_owned);
            let data = part.bytes().await.map_err(|_| missing())?;
            return Ok(FileUpload { file: data.to_vec(), filename });
        }
    }
    Err(missing())
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
    use serde::Deserialize;

    fn request(method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> Request {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::Binary(body))
            .unwrap()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Probe {
        id: i64,
        #[serde(default)]
        bio: Option<String>,
        #[serde(default)]
        a: Option<i64>,
        #[serde(default)]
        flag: Option<bool>,
    }

    fn decode(input: Input, uri: &str, body: &str) -> Result<Probe, ApiError> {
        let req = request("PUT", uri, "application/json", body.as_bytes().to_vec());
        decode_input(input, &req, vec![("id", "7".into())])
    }

    fn failed_field(result: Result<Probe, ApiError>) -> String {
        match result {
            Err(ApiError::Validation(errors)) => errors[0].field.clone(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn literal_segments_are_more_specific_than_parameters_and_greedy_ones_least() {
        let mut routes = vec!["/{proxy+}", "/items/{id}", "/items/special", "/items/{id}/parts", "/{a}/special"];
        routes.sort_by_key(|r| std::cmp::Reverse(specificity(r)));
        assert_eq!(routes, ["/items/special", "/items/{id}/parts", "/items/{id}", "/{a}/special", "/{proxy+}"]);
    }

    #[test]
    fn path_templates_match_segments() {
        assert_eq!(match_path("/users/{id}/profile", "/users/7/profile"), Some(vec![("id", "7".into())]));
        assert_eq!(match_path("/users/{id}/profile", "/users/7"), None);
        assert_eq!(match_path("/me", "/me"), Some(vec![]));
        assert_eq!(match_path("/", "/"), Some(vec![]));
        assert_eq!(match_path("/files/{key+}", "/files/a/b"), Some(vec![("key", "a/b".into())]));
        assert_eq!(match_path("/devices/{id}", "/devices/a%20b"), Some(vec![("id", "a b".into())]));
        assert_eq!(match_path("/users/{id}/profile", "/users/7/profile/x"), None, "a segment too many");
        assert_eq!(match_path("/users/{id}/profile", "/users//profile"), None, "an empty parameter");
        assert_eq!(match_path("/me", "/me/"), None);
        assert_eq!(match_path("/files/{key+}", "/files"), None, "the rest takes at least one segment");
        assert_eq!(match_path("/files/{key+}", "/files/"), Some(vec![("key", String::new())]));
        assert_eq!(match_path("/me", "me"), None);
    }

    #[test]
    fn body_wins_over_query_and_path_wins_over_both() {
        let p = decode(Input::QueryOrJson, "/x?bio=query&a=1&id=99", r#"{"bio":"body","id":5}"#).unwrap();
        assert_eq!(p, Probe { id: 7, bio: Some("body".into()), a: Some(1), flag: None });
    }

    #[test]
    fn query_values_are_percent_decoded_and_typed() {
        let p = decode(Input::Query, "/x?bio=a%20b+c%D0%BF&flag=1", "").unwrap();
        assert_eq!(p.bio.as_deref(), Some("a b cп"));
        assert_eq!(p.flag, Some(true));
        assert_eq!(decode(Input::Query, "/x?flag=false", "").unwrap().flag, Some(false));
        assert_eq!(failed_field(decode(Input::Query, "/x?flag=yes", "")), "flag");
        assert_eq!(failed_field(decode(Input::Query, "/x?a=x", "")), "a");
    }

    #[test]
    fn json_bodies_are_strict() {
        assert_eq!(failed_field(decode(Input::Json, "/x", r#"{"bio": 5}"#)), "bio");
        assert_eq!(failed_field(decode(Input::Json, "/x", r#"{"a": "5"}"#)), "a");
        assert_eq!(failed_field(decode(Input::Json, "/x", "not json")), "body");
        assert_eq!(failed_field(decode(Input::Json, "/x", "[1]")), "body");
        assert_eq!(decode(Input::Json, "/x?bio=ignored", r#"{"unknown": [1]}"#).unwrap().bio, None);
    }

    #[test]
    fn missing_fields_are_named() {
        #[derive(Debug, Deserialize)]
        struct Needs {
            #[allow(dead_code)]
            phone: String,
        }
        let req = request("POST", "/x", "application/json", b"{}".to_vec());
        match decode_input::<Needs>(Input::Json, &req, vec![]) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "phone"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_integer_path_ids_are_422() {
        let req = request("GET", "/x", "application/json", Vec::new());
        let result = decode_input::<Probe>(Input::None, &req, vec![("id", "abc".into())]);
        assert_eq!(failed_field(result), "id");
    }

    #[tokio::test]
    async fn multipart_file_part_is_found() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n--XyZ--\r\n";
        let req = || request("POST", "/upload", "multipart/form-data; boundary=XyZ", body.to_vec());
        let part = multipart_file(req(), "file").await.unwrap();
        assert_eq!(part.filename.as_deref(), Some("a.png"));
        assert_eq!(part.file, b"\x89PNG\r\n\x1a\n");
        assert!(multipart_file(req(), "missing").await.is_err());
        let req = request("POST", "/upload", "application/json", b"{}".to_vec());
        assert!(multipart_file(req, "file").await.is_err());
    }

    use proptest::prelude::*;

    /// Percent-encodes every byte outside the unreserved set, as a client's query encoder does.
    fn pct(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    proptest! {
        #[test]
        fn arbitrary_queries_and_bodies_never_panic(query in "[a-z=&%0-9A-F+]{0,40}|\\PC{0,30}", body in "\\PC{0,60}") {
            for input in [Input::Query, Input::QueryOrJson, Input::Json] {
                let uri = format!("/x?{}", query.replace(' ', "+").replace('#', "%23"));
                if let Ok(req) = http::Request::builder().method("PUT").uri(&uri).header("content-type", "application/json").body(Body::Text(body.clone())) {
                    let _ = decode_input::<Probe>(input, &req, vec![("id", "7".into())]);
                }
            }
        }

        #[test]
        fn query_values_decode_to_what_was_encoded(
            n in any::<i64>(), bio in "\\PC{0,40}", pad in "[ ]{0,2}", flag in any::<bool>(), as_digit in any::<bool>(),
        ) {
            let flag_text = if as_digit { u8::from(flag).to_string() } else { flag.to_string() };
            let uri = format!("/x?a={}&bio={}&flag={flag_text}", pct(&format!("{pad}{n}{pad}")), pct(&bio));
            let p = decode(Input::Query, &uri, "").unwrap();
            prop_assert_eq!(p, Probe { id: 7, bio: Some(bio.clone()), a: Some(n), flag: Some(flag) });
            // The same values as a JSON body read the same.
            let body = serde_json::json!({"a": n, "bio": bio, "flag": flag}).to_string();
            prop_assert_eq!(decode(Input::QueryOrJson, "/x", &body).unwrap(), Probe { id: 7, bio: Some(bio), a: Some(n), flag: Some(flag) });
        }

        #[test]
        fn path_parameters_decode_to_what_was_encoded(id in "\\PC{1,30}") {
            prop_assert_eq!(match_path("/d/{id}", &format!("/d/{}", pct(&id))), Some(vec![("id", id)]));
        }

        #[test]
        fn multipart_files_arrive_byte_for_byte(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            filename in "[A-Za-z0-9 ._-]{1,30}",
            before in proptest::collection::vec(("[a-z]{1,8}", "\\PC{0,30}"), 0..3),
        ) {
            // A boundary that cannot occur in the data.
            let boundary = format!("b{}", data.len() * 7919 + 1).repeat(3) + "Zq";
            prop_assume!(!data.windows(boundary.len()).any(|w| w == boundary.as_bytes()));
            let mut body = Vec::new();
            for (name, value) in &before {
                if name == "file" { continue; }
                body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
            }
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").bytes());
            body.extend(&data);
            body.extend(format!("\r\n--{boundary}--\r\n").bytes());
            let req = request("POST", "/upload", &format!("multipart/form-data; boundary={boundary}"), body);
            let part = block_on(multipart_file(req, "file")).unwrap();
            prop_assert_eq!(part.file, data);
            prop_assert_eq!(part.filename, Some(filename));
        }

        #[test]
        fn arbitrary_multipart_bodies_never_panic_or_invent_a_file(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let req = request("POST", "/upload", "multipart/form-data; boundary=XyZ", body.clone());
            if let Ok(part) = block_on(multipart_file(req, "file")) {
                prop_assert!(body.windows(b"name=\"file\"".len()).any(|w| w == b"name=\"file\""));
                prop_assert!(part.file.len() <= body.len());
            }
        }
    }
}
