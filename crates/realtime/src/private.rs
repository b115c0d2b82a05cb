//! Private channels: read and write permissions come from the RLS policies on
//! `realtime.messages`, checked the way Supabase does it. Reading: probe rows are inserted as
//! the admin, then selected as the subscriber with `realtime.topic` set; writing: an insert as
//! the subscriber. Both run in a transaction that is always rolled back.

use deadpool_postgres::Pool;

use crate::changes::authorizer::Identity;
use crate::error::StoreError;

const PROBE_SQL: &str = "insert into realtime.messages (topic, extension, private, event, payload) \
     select $1::text, e, true, 'probe', '{}'::jsonb from unnest($2::text[]) as e \
     returning id::text, extension";

const SETTINGS_SQL: &str =
    "select set_config(s.key, s.value, true) from json_each_text($1::text::json) as s";

const VISIBLE_SQL: &str =
    "select extension from realtime.messages where id::text = any($1::text[])";

const WRITE_SQL: &str = "insert into realtime.messages (topic, extension, private, event, payload) \
     values ($1::text, $2::text, true, 'probe', '{}'::jsonb)";

/// `insufficient_privilege`: the RLS check (or a missing grant) refused the insert.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// The identity used for private-channel checks: `realtime.topic` set to the channel's name.
pub(crate) fn topic_identity(role: &str, claims_json: String, name: &str) -> Identity {
    Identity::new(role, claims_json, &[("realtime.topic", name)])
}

/// Which of `extensions` (`broadcast`, `presence`) the identity may read on topic `name`.
pub(crate) async fn readable(
    pool: &Pool,
    name: &str,
    identity: &Identity,
    extensions: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let wanted: Vec<String> = extensions.iter().map(|e| (*e).to_owned()).collect();
    let probes = transaction.query(PROBE_SQL, &[&name, &wanted]).await?;
    let ids: Vec<String> = probes.iter().map(|row| row.get(0)).collect();
    transaction
        .query(SETTINGS_SQL, &[&identity.settings_json()])
        .await?;
    let visible = transaction.query(VISIBLE_SQL, &[&ids]).await;
    let _ = transaction.rollback().await;
    match visible {
        Ok(rows) => Ok(rows.iter().map(|row| row.get(0)).collect()),
        Err(error) if error.code().map(|c| c.code()) == Some(INSUFFICIENT_PRIVILEGE) => {
            Ok(Vec::new())
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether the identity may write `extension` messages on topic `name`.
pub(crate) async fn writable(
    pool: &Pool,
    name: &str,
    identity: &Identity,
    extension: &str,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction
        .query(SETTINGS_SQL, &[&identity.settings_json()])
        .await?;
    let inserted = transaction.execute(WRITE_SQL, &[&name, &extension]).await;
    let _ = transaction.rollback().await;
    match inserted {
        Ok(_) => Ok(true),
        Err(error) if error.code().map(|c| c.code()) == Some(INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(error) => Err(error.into()),
    }
}
