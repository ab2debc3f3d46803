//! Mapping rows to structs by column name.

use serde::{Deserialize, Deserializer};

/// Maps a row to `T` by column name (`libsql::de::from_row`); a mismatch is a database error.
pub fn from_row<'de, T: Deserialize<'de>>(row: &'de libsql::Row) -> Result<T, libsql::Error> {
    libsql::de::from_row(row).map_err(|e| libsql::Error::Misuse(format!("row mapping: {e}")))
}

/// SQLite stores booleans as integers: use with `#[serde(deserialize_with = "int_bool")]`.
pub fn int_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(deserializer)? != 0)
}

/// Every row of a query, mapped by column name.
pub async fn collect<T: serde::de::DeserializeOwned>(mut rows: libsql::Rows) -> Result<Vec<T>, libsql::Error> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(from_row(&row)?);
    }
    Ok(out)
}

/// The first row of a query, mapped by column name.
pub async fn first<T: serde::de::DeserializeOwned>(mut rows: libsql::Rows) -> Result<Option<T>, libsql::Error> {
    match rows.next().await? {
        Some(row) => Ok(Some(from_row(&row)?)),
        None => Ok(None),
    }
}
