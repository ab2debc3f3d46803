//! Reads the routing table from `template.yaml`: the HttpApi events of each function, resolved to the
//! function's binary name (`Metadata.BuildProperties.Binary`).

use anyhow::{Context as _, bail};
use serde_yaml_ng::Value;

/// One HTTP route of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path template, e.g. `/users/{user_id}/profile`.
    pub path: String,
    /// Binary name of the function serving it.
    pub function: String,
}

/// Every HttpApi route of every function in the template.
pub fn http_routes(yaml: &str) -> anyhow::Result<Vec<HttpRoute>> {
    let doc: Value = serde_yaml_ng::from_str(yaml).context("template.yaml is not valid YAML")?;
    let resources = doc.get("Resources").and_then(Value::as_mapping).context("template.yaml has no Resources")?;
    let mut routes = Vec::new();
    for (name, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        let events = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping);
        for (event_name, event) in events.into_iter().flatten() {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .with_context(|| format!("function {name} has routes but no Metadata.BuildProperties.Binary"))?;
            let props = event.get("Properties");
            let method = props.and_then(|p| p.get("Method")).and_then(Value::as_str);
            let path = props.and_then(|p| p.get("Path")).and_then(Value::as_str);
            let (Some(method), Some(path)) = (method, path) else {
                bail!(
                    "event {} of function {name} needs Properties.Method and Properties.Path",
                    event_name.as_str().unwrap_or("?")
                );
            };
            routes.push(HttpRoute {
                method: method.to_ascii_uppercase(),
                path: path.to_owned(),
                function: binary.to_owned(),
            });
        }
    }
    Ok(routes)
}

/// Checks that every route names a known function and every known function has a route.
pub fn check(routes: &[HttpRoute], ws: &[WsRoute], known: &[&str]) -> anyhow::Result<()> {
    for r in ws {
        if !known.contains(&r.function.as_str()) {
            bail!(
                "template.yaml routes WebSocket {} to function `{}`, which the local gateway does not know",
                r.route_key,
                r.function
            );
        }
    }
    for r in routes {
        if !known.contains(&r.function.as_str()) {
            bail!(
                "template.yaml routes {} {} to function `{}`, which the local gateway does not know (known: {})",
                r.method,
                r.path,
                r.function,
                known.join(", ")
            );
        }
    }
    for f in known {
        if !routes.iter().any(|r| r.function == *f) && !ws.iter().any(|r| r.function == *f) {
            bail!("function `{f}` has no route in template.yaml");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "
Resources:
  UsersFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: users
    Properties:
      Environment:
        Variables:
          BUCKET: !Ref FilesBucket
      Events:
        GetMe:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: get
            Path: /me
  MigrateFunction:
    Type: AWS::Serverless::Function
    Properties: {}
";

    #[test]
    fn routes_resolve_to_binaries_through_short_form_tags() {
        let routes = http_routes(YAML).unwrap();
        assert_eq!(routes, vec![HttpRoute { method: "GET".into(), path: "/me".into(), function: "users".into() }]);
    }

    #[test]
    fn unknown_functions_and_functions_without_routes_stop_the_start() {
        let routes = http_routes(YAML).unwrap();
        assert!(check(&routes, &[], &["users"]).is_ok());
        let err = check(&routes, &[], &["auth"]).unwrap_err().to_string();
        assert!(err.contains("does not know"), "{err}");
        let err = check(&routes, &[], &["users", "auth"]).unwrap_err().to_string();
        assert!(err.contains("`auth` has no route"), "{err}");
    }

    const WS_YAML: &str = r#"
Resources:
  WsApi:
    Type: AWS::ApiGatewayV2::Api
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WsApi
      RouteKey: $connect
      Target: !Sub "integrations/${ConnectIntegration}"
  ConnectIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      IntegrationUri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WsConnectFunction.Arn}/invocations"
  WsConnectFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: ws-connect
"#;

    #[test]
    fn websocket_routes_resolve_through_their_integrations() {
        let routes = ws_routes(WS_YAML).unwrap();
        assert_eq!(routes, vec![WsRoute { route_key: "$connect".into(), function: "ws-connect".into() }]);
        assert!(check(&[], &routes, &["ws-connect"]).is_ok());
        assert!(check(&[], &routes, &["ws-message"]).is_err());
    }
}

/// One WebSocket route of the template (`AWS::ApiGatewayV2::Route` → integration → function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRoute {
    /// Route key: `$connect`, `$disconnect`, `$default` or an action.
    pub route_key: String,
    /// Binary name of the function serving it.
    pub function: String,
}

/// The `${Name}` references inside a value (a `!Sub` string, a `!GetAtt`, or plain text).
fn references(value: &Value) -> Vec<String> {
    let text = match value {
        Value::Tagged(t) => match &t.value {
            Value::String(s) => s.clone(),
            Value::Sequence(seq) => seq.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => String::new(),
        },
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    text.split("${")
        .skip(1)
        .filter_map(|s| s.split('}').next())
        .map(|s| s.split('.').next().unwrap_or(s).to_owned())
        .collect()
}

/// Every WebSocket route of the template, resolved through its integration to the function's binary.
pub fn ws_routes(yaml: &str) -> anyhow::Result<Vec<WsRoute>> {
    let doc: Value = serde_yaml_ng::from_str(yaml).context("template.yaml is not valid YAML")?;
    let resources = doc.get("Resources").and_then(Value::as_mapping).context("template.yaml has no Resources")?;
    let resource = |name: &str| resources.get(Value::String(name.to_owned()));
    let mut routes = Vec::new();
    for (name, res) in resources {
        if res.get("Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        let props = res.get("Properties").with_context(|| format!("route {name} has no Properties"))?;
        let key =
            props.get("RouteKey").and_then(Value::as_str).with_context(|| format!("route {name} has no RouteKey"))?;
        let integration = props
            .get("Target")
            .map(references)
            .and_then(|r| r.into_iter().next())
            .with_context(|| format!("route {name} has no Target integrations/${{...}}"))?;
        let uri = resource(&integration)
            .and_then(|i| i.get("Properties"))
            .and_then(|p| p.get("IntegrationUri"))
            .with_context(|| format!("route {name}: integration {integration} has no IntegrationUri"))?;
        let function = references(uri)
            .into_iter()
            .find(|r| {
                resource(r).and_then(|f| f.get("Type")).and_then(Value::as_str) == Some("AWS::Serverless::Function")
            })
            .with_context(|| format!("route {name}: integration {integration} names no function"))?;
        let binary = resource(&function)
            .and_then(|f| f.get("Metadata"))
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .with_context(|| format!("function {function} has no Metadata.BuildProperties.Binary"))?;
        routes.push(WsRoute { route_key: key.to_owned(), function: binary.to_owned() });
    }
    Ok(routes)
}
