//! The `contact` table: the private names a user gives other users.

use super::Conn;
use crate::db::{all, column, id_list};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

#[derive(Deserialize)]
struct LocalName {
    contact_id: i64,
    local_name: String,
}

/// Which of `owners` named `viewer` (a non-empty local name), which makes `viewer` their contact.
pub async fn naming_owners(conn: &Conn, viewer: i64, owners: &[i64]) -> Result<HashSet<i64>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT owner_id FROM contact WHERE contact_id = ?1 \
             AND owner_id IN (SELECT value FROM json_each(?2)) AND local_name IS NOT NULL AND local_name != ''",
            (viewer, id_list(owners)),
        )
        .await?;
    Ok(column::<i64>(rows).await?.into_iter().collect())
}

/// The local names `owner` gave to users among `contacts`.
pub async fn local_names(conn: &Conn, owner: i64, contacts: &[i64]) -> Result<HashMap<i64, String>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT contact_id, local_name FROM contact WHERE owner_id = ?1 \
             AND contact_id IN (SELECT value FROM json_each(?2)) AND local_name IS NOT NULL",
            (owner, id_list(contacts)),
        )
        .await?;
    Ok(all::<LocalName>(rows).await?.into_iter().map(|n| (n.contact_id, n.local_name)).collect())
}

/// Sets (or, with `None`, clears) the local name `owner` gives `contact`.
pub async fn set_local_name(
    conn: &Conn,
    owner: i64,
    contact: i64,
    local_name: Option<&str>,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO contact (owner_id, contact_id, local_name) VALUES (?1, ?2, ?3) \
         ON CONFLICT (owner_id, contact_id) DO UPDATE SET local_name = excluded.local_name",
        (owner, contact, local_name),
    )
    .await?;
    Ok(())
}

/// Deletes the contact row of (`owner`, `contact`), if any.
pub async fn delete(conn: &Conn, owner: i64, contact: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM contact WHERE owner_id = ?1 AND contact_id = ?2", (owner, contact)).await?;
    Ok(())
}

/// Deletes every contact row naming or owned by a user (account deletion).
pub async fn delete_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM contact WHERE owner_id = ?1 OR contact_id = ?1", [user_id]).await?;
    Ok(())
}
