//! No input makes any endpoint answer 500: every route gets hostile bodies, queries and parameters.

use messenger_tests::TestApp;

#[tokio::test]
async fn hostile_input_never_causes_a_server_error() {
    // Hostile deletions are password checks, and the hostile calls are many; their budgets are not what this
    // test is about.
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_PASSWORD_CHANGE", "1000000/60"),
        ("RATE_LIMIT_REST_WRITE", "1000000/60"),
        ("RATE_LIMIT_REST_READ", "1000000/60"),
    ])
    .await;
    let user = app.user().await;
    let bodies: [&[u8]; 7] = [
        b"",
        b"null",
        b"[]",
        b"{\"password\": 5, \"phone\": [], \"first_name\": {}, \"bio\": 1e999}",
        b"\xff\xfe\x00garbage",
        b"{\"avatar_visibility_exceptions\": \"[[[[\", \"limit\": -1, \"new_username\": null}",
        b"{\"birthdate\": \"9999-99-99\", \"username\": \"\\u0000\", \"device_id\": \"../../etc\"}",
    ];
    let queries =
        ["", "?limit=-5&after_id=x", "?query=%00%ff&username=%", "?new_username=&frame=&avatar_id=%2F..", "?a=%zz"];
    // Account deletion goes last: it ends the session the other requests use.
    let mut routes = wire::endpoints();
    routes.sort_by_key(|r| r.operation_id == "delete_account");
    for route in routes {
        let path: String = route
            .path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "-1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for query in queries {
            for body in bodies {
                for token in [Some(user.token.as_str()), None] {
                    for ct in ["application/json", "multipart/form-data; boundary=x", "text/plain"] {
                        let resp = user
                            .client
                            .raw(route.method.as_str(), &format!("{path}{query}"), token, ct, body.to_vec())
                            .await;
                        assert!(
                            resp.status.as_u16() < 500,
                            "{} {path}{query} {:?}: {}",
                            route.method.as_str(),
                            body,
                            resp.text
                        );
                    }
                }
            }
        }
    }
    // No hostile body carried the password, so the account is still there; with it, the deletion goes through
    // and the token dies with the account.
    user.get("/me").await.expect(200);
    assert_eq!(user.delete_account().await.status.as_u16(), 204);
    user.get("/me").await.expect_error(401, "invalid_token");
}
