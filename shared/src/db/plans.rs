//! The query plan of every statement in `shared/src/db`: the nearest libSQL gets to checked queries.
//!
//! Every SQL string literal of this directory's code (tests left out) is asked `EXPLAIN QUERY PLAN` on a
//! migrated database, its `{CONST}` placeholders filled from the file's string constants. A statement that
//! reads a whole table (`SCAN <table>`) fails the test unless it is listed in [`SCANS_ALLOWED`] with the
//! reason it may, so a statement that loses its index on the way to a large table is caught here rather than
//! on a large database.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Statements that may scan a table, by a fragment of their text, and why.
const SCANS_ALLOWED: &[(&str, &str)] = &[
    // The operator panel's account list and count filter by substring over every live account, page by page
    // with OFFSET: an operator's occasional request, bounded by the page.
    ("FROM user WHERE is_deleted = 0 AND (?1 IS NULL OR instr(search_text, ?1) > 0)", "operator panel: accounts"),
    // The operator dashboard's totals count what they total.
    ("(SELECT COUNT(*) FROM connection) AS connections", "operator dashboard: totals"),
    // Operator sessions: a handful of rows.
    ("DELETE FROM admin_session WHERE last_seen_at <= ?1", "operator sessions"),
    // Jobs in progress only (a finished job's row is deleted), in id order up to the limit.
    ("SELECT id FROM bulk_job WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id LIMIT ?2", "bulk jobs in progress"),
    // Search for one character, which the API never asks (it takes two or more): up to the 20th match.
    ("AND instr(search_text, ?2) > 0 ORDER BY id LIMIT 20", "one-character search"),
];

/// The first SQL keywords of a statement.
const STATEMENT_STARTS: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE"];

/// One string literal of Rust source (normal or raw), with its escapes and line continuations applied.
fn string_literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                // A char literal ('x', '\n', '\''), else a lifetime.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            'r' if matches!(chars.get(i + 1), Some('#' | '"')) && (i == 0 || !chars[i - 1].is_alphanumeric()) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let mut end = start;
                loop {
                    if end >= chars.len() {
                        break;
                    }
                    if chars[end] == '"' && (1..=hashes).all(|h| chars.get(end + h) == Some(&'#')) {
                        break;
                    }
                    end += 1;
                }
                out.push(chars[start..end.min(chars.len())].iter().collect());
                i = end + 1 + hashes;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        match chars.get(i + 1) {
                            Some('\n') => {
                                i += 2;
                                while i < chars.len() && chars[i].is_whitespace() {
                                    i += 1;
                                }
                                continue;
                            }
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some(&c) => text.push(c),
                            None => {}
                        }
                        i += 2;
                    } else {
                        text.push(chars[i]);
                        i += 1;
                    }
                }
                i += 1;
                out.push(text);
            }
            _ => i += 1,
        }
    }
    out
}

/// `const NAME: &str = "…";` of `source`, by name.
fn string_constants(source: &str) -> HashMap<String, String> {
    let mut constants = HashMap::new();
    for (at, _) in source.match_indices("const ") {
        let rest = &source[at + "const ".len()..];
        let Some((name, after)) = rest.split_once(':') else { continue };
        let name = name.trim();
        if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) {
            continue;
        }
        let Some(value) = after.trim_start().strip_prefix("&str =") else { continue };
        let Some(end) = value.find(';') else { continue };
        if let Some(literal) = string_literals(&value[..end]).into_iter().next() {
            constants.insert(name.to_owned(), literal);
        }
    }
    constants
}

/// Fills `{NAME}` from `constants`; any other placeholder (`{}`, an `ORDER BY` chosen at run time) with `id`.
fn fill(sql: &str, constants: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + close];
        out.push_str(constants.get(name).map_or("id", String::as_str));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every statement of the non-test code of `shared/src/db`, with the file it is in.
fn statements() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "plans.rs" {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        let constants = string_constants(code);
        // A constant spliced into statements (`{NAME}`) is a fragment of them, not a statement of its own.
        let fragments: Vec<&String> = constants
            .iter()
            .filter(|(name, _)| code.contains(&format!("{{{name}}}")))
            .map(|(_, value)| value)
            .collect();
        for literal in string_literals(code) {
            if fragments.contains(&&literal) {
                continue;
            }
            let trimmed = literal.trim_start();
            // Statements are written in capitals; messages that begin with the same words are not.
            let first = trimmed.split_whitespace().next().unwrap_or_default();
            if STATEMENT_STARTS.contains(&first) && trimmed.contains(' ') {
                out.push((name.clone(), fill(trimmed, &constants)));
            }
        }
    }
    out
}

#[tokio::test]
async fn no_statement_reads_a_whole_table_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = super::Db::open(&format!("file:{}", dir.path().join("plans.db").display()), None).await.unwrap();
    super::migrate(&db).await.unwrap();
    let conn = db.conn().await.unwrap();
    let tables: BTreeSet<String> = super::all::<Named>(
        conn.query("SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'", ())
            .await
            .unwrap(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|t| t.name)
    .collect();

    let statements = statements();
    assert!(statements.len() > 150, "only {} statements found: is the scanner reading the files?", statements.len());
    let mut scans = Vec::new();
    let mut unplanned = Vec::new();
    for (file, sql) in &statements {
        let rows = match conn.query(&format!("EXPLAIN QUERY PLAN {sql}"), ()).await {
            Ok(rows) => rows,
            Err(e) => {
                unplanned.push(format!("{file}: {e}\n    {sql}"));
                continue;
            }
        };
        for step in super::all::<Step>(rows).await.unwrap() {
            let mut words = step.detail.split_whitespace();
            let (Some("SCAN"), Some(table)) = (words.next(), words.next()) else { continue };
            if tables.contains(table) && !SCANS_ALLOWED.iter().any(|(fragment, _)| sql.contains(fragment)) {
                scans.push(format!("{file}: {}\n    {sql}", step.detail));
            }
        }
    }
    assert!(unplanned.is_empty(), "statements SQLite could not plan:\n{}", unplanned.join("\n"));
    assert!(scans.is_empty(), "statements that read a whole table:\n{}", scans.join("\n"));
    // Every allowance still matches a statement (a stale one would hide the next scan of its text).
    for (fragment, why) in SCANS_ALLOWED {
        assert!(statements.iter().any(|(_, sql)| sql.contains(fragment)), "allowed scan ({why}) matches nothing");
    }
}

#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

#[derive(serde::Deserialize)]
struct Step {
    detail: String,
}

#[test]
fn the_scanner_reads_literals_constants_and_placeholders() {
    let source = r##"
        // "not this"
        const COLUMNS: &str = "id, \
                               name";
        fn f() { let c = '"'; let l: &'static str = "SELECT {COLUMNS} FROM t ORDER BY {}"; }
        const RAW: &str = r#"DELETE FROM "t" WHERE x = 'a'"#;
    "##;
    let literals = string_literals(source);
    assert_eq!(literals, ["id, name", "SELECT {COLUMNS} FROM t ORDER BY {}", "DELETE FROM \"t\" WHERE x = 'a'"]);
    let constants = string_constants(source);
    assert_eq!(fill(&literals[1], &constants), "SELECT id, name FROM t ORDER BY id");
}
