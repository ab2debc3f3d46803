//! What `template.yaml` grants and passes to the functions on AWS (issue 24 item 9): no secret as a value,
//! object access only under the key prefix; and how `sam build` builds each function (issue 12).

use serde_yaml_ng::Value;

fn template() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(messenger_tests::template_path()).unwrap()).unwrap()
}

/// The template's functions by resource name.
fn functions(yaml: &Value) -> Vec<(String, &Value)> {
    let resources = yaml["Resources"].as_mapping().unwrap();
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, r)| (name.as_str().unwrap().to_owned(), r))
        .collect()
}

/// A YAML value with its `!Ref`/`!Sub`/... tags as plain text, for matching.
fn text(value: &Value) -> String {
    serde_yaml_ng::to_string(value).unwrap()
}

/// Every IAM statement of a function's inline policies.
fn statements(function: &Value) -> Vec<&Value> {
    let policies = function["Properties"]["Policies"].as_sequence().map(Vec::as_slice).unwrap_or_default();
    policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten().collect()
}

#[test]
fn no_secret_is_a_parameter_or_an_environment_variable_and_each_role_reads_only_its_own() {
    let yaml = template();
    // Nothing a deployer types in is secret: a NoEcho parameter would be one passed by value.
    for (name, parameter) in yaml["Parameters"].as_mapping().unwrap() {
        assert!(parameter.get("NoEcho").is_none(), "parameter {name:?} is a secret passed by value");
    }
    let globals = &yaml["Globals"]["Function"]["Environment"]["Variables"];
    let mut environments = vec![("Globals".to_owned(), globals)];
    for (name, function) in functions(&yaml) {
        environments.push((name, &function["Properties"]["Environment"]["Variables"]));
    }
    for (name, variables) in &environments {
        for secret in shared::secrets::SECRETS {
            assert!(variables.get(secret).is_none(), "{name} gets {secret} as a value");
        }
    }
    for arn in ["JWT_SECRET_ARN", "DATABASE_AUTH_TOKEN_ARN"] {
        assert!(globals.get(arn).is_some(), "every function gets {arn}");
    }
    let admin_secret = |function: &Value| {
        let variables = &function["Properties"]["Environment"]["Variables"];
        variables.get("ADMIN_SESSION_SECRET_ARN").is_some()
    };
    for (name, function) in functions(&yaml) {
        // Every role reads the shared secrets; only the admin function's the panel's key.
        let policies = text(&function["Properties"]["Policies"]);
        assert!(policies.contains("ReadSharedSecrets"), "{name} cannot read the JWT secret");
        let reads_admin_key = statements(function).iter().any(|s| text(&s["Resource"]).contains("AdminSessionSecret"));
        assert_eq!(reads_admin_key, name == "AdminFunction", "{name}: the panel key");
        assert_eq!(admin_secret(function), name == "AdminFunction", "{name}: ADMIN_SESSION_SECRET_ARN");
    }
    let shared = text(&yaml["Resources"]["ReadSharedSecrets"]);
    assert!(shared.contains("secretsmanager:GetSecretValue") && !shared.contains("AdminSessionSecret"), "{shared}");
}

#[test]
fn object_permissions_cover_only_the_prefix_every_key_has() {
    let key = shared::storage::new_key();
    assert!(key.starts_with(shared::storage::KEY_PREFIX), "{key}");
    let objects = format!("${{FilesBucket.Arn}}/{}*", shared::storage::KEY_PREFIX);
    let mut checked = 0;
    for (name, function) in functions(&template()) {
        for statement in statements(function) {
            let actions = text(&statement["Action"]);
            if !actions.contains("s3:") {
                continue;
            }
            let resource = text(&statement["Resource"]);
            if actions.contains("s3:ListBucket") {
                let prefix = &statement["Condition"]["StringLike"]["s3:prefix"];
                assert_eq!(prefix.as_str(), Some(&*format!("{}*", shared::storage::KEY_PREFIX)), "{name}");
            } else {
                assert!(resource.contains(&objects), "{name} reaches objects outside {objects}: {resource}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "the functions that touch objects have S3 statements");
}

#[test]
fn sam_builds_each_function_from_its_own_package_with_only_that_packages_features() {
    // SAM runs `cargo lambda build --release --arm64 --bin <Binary>` in the function's CodeUri. From the
    // workspace root that selects every member, so the features of the local stack, the bench and the tests
    // were unified into each function (users 0.5 MB larger, over the 6 MiB budget; migrate 1.5 MB); from the
    // package's own directory cargo builds that package alone, as `cargo lambda build -p <function>` does.
    let root = messenger_tests::template_path().parent().unwrap().to_owned();
    let mut checked = 0;
    for (name, function) in functions(&template()) {
        assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"), "{name}");
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let code_uri = function["Properties"]["CodeUri"].as_str().unwrap();
        assert_eq!(code_uri, format!("functions/{binary}"), "{name}");
        let manifest = std::fs::read_to_string(root.join(code_uri).join("Cargo.toml")).unwrap();
        // The `name` of its `[package]` (the first key of that table in every manifest here).
        let package = manifest
            .split("[package]")
            .nth(1)
            .and_then(|table| table.lines().find_map(|l| l.trim().strip_prefix("name = ")))
            .map(|v| v.trim_matches('"'));
        assert_eq!(package, Some(binary), "{name}: the package in {code_uri} builds the binary {binary}");
        assert!(root.join(code_uri).join("src/main.rs").is_file(), "{name}: {code_uri}/src/main.rs");
        checked += 1;
    }
    assert_eq!(checked, 14, "every function");
}
