//! Applies pending migrations and exits: run once per deploy (as a Lambda invocation or from a shell).
//!
//! It is also the operator step on AWS for the admin panel's rights (API.md §11.2), never reachable through
//! the API: invoke it with `{"admin": "grant", "login": "<phone|username>"}` (or `"revoke"`), or run
//! `migrate admin grant|revoke <phone|username>` with the deployment's database settings.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run reports: the migrations it applied and the schema version the database is now at, and the
/// operator change when one was asked for.
#[derive(Serialize)]
struct Applied {
    applied: Vec<&'static str>,
    version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin: Option<AdminOutcome>,
}

/// An operator change: which account, and whether its rights changed.
#[derive(Serialize)]
struct AdminOutcome {
    user_id: i64,
    is_admin: bool,
    changed: bool,
}

/// The operator step: `grant` or `revoke` rights of the account with this phone or username.
#[derive(Deserialize)]
struct AdminRequest {
    admin: String,
    login: String,
}

async fn apply(admin: Option<AdminRequest>) -> Result<Applied, lambda_runtime::Error> {
    let config = shared::secrets::load_config().await?;
    let db =
        shared::db::Db::open_with(&config.database_url, config.database_auth_token.as_ref(), config.database.clone())
            .await?;
    let applied = shared::db::migrate(&db).await?;
    tracing::info!(?applied, "migrations applied");
    let admin = match admin {
        None => None,
        Some(req) => {
            let grant = match req.admin.as_str() {
                "grant" => true,
                "revoke" => false,
                _ => return Err("\"admin\" is \"grant\" or \"revoke\"".into()),
            };
            let change = shared::accounts::set_operator(&db, &req.login, grant)
                .await?
                .ok_or("no live account has that phone number or username")?;
            tracing::info!(user_id = change.user_id, grant, changed = change.changed, "operator rights");
            Some(AdminOutcome { user_id: change.user_id, is_admin: grant, changed: change.changed })
        }
    };
    Ok(Applied { applied, version: shared::db::latest_version(), admin })
}

/// The operator step of an event (`{"admin": …, "login": …}`); any other event only migrates.
fn admin_request(event: Value) -> Result<Option<AdminRequest>, lambda_runtime::Error> {
    if event.get("admin").is_none() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_value(event).map_err(|_| "expected {\"admin\": \"grant\"|\"revoke\", \"login\": \"…\"}")?))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
            apply(admin_request(event.payload)?).await
        }))
        .await
    } else {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let admin = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            [] => None,
            ["admin", action @ ("grant" | "revoke"), login] => {
                Some(AdminRequest { admin: (*action).to_owned(), login: (*login).to_owned() })
            }
            _ => return Err("usage: migrate [admin grant|revoke <phone|username>]".into()),
        };
        println!("{}", serde_json::to_string(&apply(admin).await?)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_event_naming_admin_asks_for_the_operator_step() {
        assert!(admin_request(serde_json::json!({})).unwrap().is_none(), "a plain invocation only migrates");
        let req = admin_request(serde_json::json!({"admin": "grant", "login": "ada_l"})).unwrap().unwrap();
        assert_eq!((req.admin.as_str(), req.login.as_str()), ("grant", "ada_l"));
        assert!(admin_request(serde_json::json!({"admin": "grant"})).is_err(), "no login");
        assert!(admin_request(serde_json::json!({"admin": 1, "login": "x"})).is_err());
    }
}
