//! Operations on the whole database (SPEC §10): the health probe, a consistent copy of a SQLite
//! installation, erasing a person, and dropping the raw bytes of old closed tickets.
//!
//! Invariant: what `forget` erases is gone from the database *file*, not only unlinked — SQLite
//! zeroes what the transaction frees (`secure_delete`), then the file is rebuilt (`VACUUM`) and the
//! write-ahead log emptied; PostgreSQL rewrites the touched tables (`VACUUM FULL`).

use std::time::Duration;

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::schema::{
    attachments, blobs, login_tokens, messages, raw_mails, reads, saved_criteria, sessions, tickets, undeliverable,
    watchers,
};
use super::{AnyConnection, Backend, Conn, Store, next_id, write_tx};

/// The tables `forget` may leave dead rows in (PostgreSQL rewrites them).
const TOUCHED_TABLES: &[&str] = &[
    "messages",
    "message_search",
    "tickets",
    "watchers",
    "attachments",
    "blobs",
    "raw_mails",
    "outbox",
    "sessions",
    "login_tokens",
    "reads",
    "saved_criteria",
    "rate_events",
    "undeliverable",
];

impl Store {
    /// Whether the database answers within `timeout`. PostgreSQL: a pooled connection makes a
    /// round trip to the server. SQLite: the pool's open connections would keep answering from a
    /// file that was removed, replaced or made unreadable, so the file is opened afresh, as the
    /// next start would, and its schema read.
    pub fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        if let Some(path) = &self.sqlite_path {
            return ping_sqlite_file(path);
        }
        let mut conn = self.pool.get_timeout(timeout).context("no database connection")?;
        conn.batch_execute("SELECT 1").context("the database does not answer")?;
        Ok(())
    }

    /// Whether the tables exist (a database nobody migrated yet has none).
    pub fn has_schema(&self) -> anyhow::Result<bool> {
        let mut conn = self.conn()?;
        Ok(super::schema::meta::table.count().get_result::<i64>(&mut *conn).is_ok())
    }

    /// Writes a consistent copy of a SQLite database to `target` (`VACUUM INTO`: one read
    /// transaction, so the daemon keeps writing meanwhile). PostgreSQL has its own tool.
    pub fn backup_to(&self, target: &std::path::Path) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            bail!(
                "backup copies SQLite installations; for PostgreSQL use its own tool, consistent while guichet runs: \
                 pg_dump --format=custom --file=guichet.dump DATABASE_URL (restore with pg_restore)"
            );
        }
        if target.exists() {
            bail!("{} already exists; backup never overwrites a file", target.display());
        }
        let target = target.to_str().context("the backup path is not UTF-8")?;
        let mut conn = self.conn()?;
        diesel::sql_query("VACUUM INTO ?").bind::<Text, _>(target).execute(&mut *conn).context("VACUUM INTO")?;
        Ok(())
    }

    /// Erases a person (GDPR): see [`forget_in`]; then makes sure the bytes leave the file.
    /// Returns the placeholder that now stands for them.
    pub fn forget(&self, address: &str) -> anyhow::Result<Forgotten> {
        let mut conn = self.conn()?;
        if self.backend == Backend::Sqlite {
            // This connection zeroes every page content its transaction frees.
            conn.batch_execute("PRAGMA secure_delete = ON;")?;
        }
        let forgotten = write_tx(&mut conn, |c| forget_in(c, address));
        if self.backend == Backend::Sqlite {
            // Back to the pool's default for the next user of this connection.
            conn.batch_execute("PRAGMA secure_delete = OFF;")?;
        }
        let forgotten = forgotten?;
        match self.backend {
            Backend::Sqlite => {
                // FTS5 keeps deleted words in old index segments until they are merged.
                conn.batch_execute("INSERT INTO message_search (message_search) VALUES ('optimize'); VACUUM;")?;
                #[derive(QueryableByName)]
                struct Checkpoint {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    busy: i32,
                }
                let c: Checkpoint = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(&mut *conn)?;
                if c.busy != 0 {
                    bail!("the write-ahead log is in use and still holds erased bytes; run forget again");
                }
            }
            Backend::Postgres => {
                for table in TOUCHED_TABLES {
                    conn.batch_execute(&format!("VACUUM FULL {table}"))?;
                }
            }
        }
        Ok(forgotten)
    }
}

fn ping_sqlite_file(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // root opens any file whatever its mode; a file its owner may not read and write, or a
    // directory where its owner may not create the log beside it, is broken all the same (the
    // service's own user could not open it).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o600 != 0o600 {
            bail!("{} is not readable and writable by its owner (mode {:o})", path.display(), mode & 0o777);
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let mode =
            std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?.permissions().mode();
        if mode & 0o700 != 0o700 {
            bail!("{} is not open to its owner (mode {:o})", dir.display(), mode & 0o777);
        }
    }
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.batch_execute("PRAGMA busy_timeout = 3000; SELECT count(*) FROM sqlite_master;")
        .with_context(|| format!("{} does not answer", path.display()))?;
    Ok(())
}

/// What [`Store::forget`] did.
#[derive(Debug, Default)]
pub struct Forgotten {
    pub placeholder: String,
    pub messages: usize,
    pub raw_mails: usize,
    pub tickets: usize,
}

/// Erases `address` inside the caller's transaction: their messages' text, files and raw mails,
/// their sessions, login tokens, watcher rows, read marks, saved criteria and queued mail; every
/// other mention of the address becomes a placeholder (`forgotten-N@invalid`). Tickets stay, so
/// that staff keep the history of their own answers.
pub fn forget_in(conn: &mut Conn, address: &str) -> anyhow::Result<Forgotten> {
    let placeholder = format!("forgotten-{}@invalid", next_id(conn, "forgotten")?);
    let like = format!("%{}%", address.to_lowercase());

    // Their own messages: text, files and raw mails go.
    let theirs: Vec<(i64, Option<i64>)> = messages::table
        .filter(messages::from_addr.eq(address))
        .select((messages::id, messages::raw_mail_id))
        .load(conn)?;
    let their_ids: Vec<i64> = theirs.iter().map(|(id, _)| *id).collect();
    let mut raw_ids: Vec<i64> = theirs.iter().filter_map(|(_, raw)| *raw).collect();
    let shas: Vec<String> = attachments::table
        .filter(attachments::message_id.eq_any(&their_ids))
        .select(attachments::blob_sha256)
        .load(conn)?;
    diesel::delete(attachments::table.filter(attachments::message_id.eq_any(&their_ids))).execute(conn)?;
    let still_used: Vec<String> = attachments::table
        .filter(attachments::blob_sha256.eq_any(&shas))
        .select(attachments::blob_sha256)
        .load(conn)?;
    let unused: Vec<&String> = shas.iter().filter(|s| !still_used.contains(s)).collect();
    diesel::delete(blobs::table.filter(blobs::sha256.eq_any(unused))).execute(conn)?;
    diesel::update(messages::table.filter(messages::id.eq_any(&their_ids)))
        .set((
            messages::from_addr.eq(&placeholder),
            messages::from_name.eq(None::<String>),
            messages::subject.eq(""),
            messages::text.eq(""),
            messages::full_text.eq(""),
            messages::html.eq(None::<String>),
            messages::raw_mail_id.eq(None::<i64>),
        ))
        .execute(conn)?;
    for id in &their_ids {
        unindex(conn, *id)?;
    }

    // Everyone else's messages that name them, in any case: the address becomes the placeholder.
    let mention = Mention::new(address, &placeholder)?;
    let mentioning: Vec<Id> = diesel::sql_query(
        "SELECT id FROM messages WHERE LOWER(from_addr) LIKE $1 OR LOWER(subject) LIKE $1 \
         OR LOWER(full_text) LIKE $1 OR LOWER(text) LIKE $1 OR LOWER(html) LIKE $1 OR LOWER(event) LIKE $1",
    )
    .bind::<Text, _>(&like)
    .load(conn)?;
    for Id { id } in mentioning {
        type Texts = (String, String, String, String, Option<String>, Option<String>);
        let (from, subject, text, full_text, html, event): Texts = messages::table
            .find(id)
            .select((
                messages::from_addr,
                messages::subject,
                messages::text,
                messages::full_text,
                messages::html,
                messages::event,
            ))
            .get_result(conn)?;
        let (subject, full_text) = (mention.scrub(&subject), mention.scrub(&full_text));
        diesel::update(messages::table.find(id))
            .set((
                messages::from_addr.eq(mention.scrub(&from)),
                messages::subject.eq(&subject),
                messages::text.eq(mention.scrub(&text)),
                messages::full_text.eq(&full_text),
                messages::html.eq(html.as_deref().map(|h| mention.scrub(h))),
                // A fact naming them (a watcher added, a ticket opened on their behalf…).
                messages::event.eq(event.as_deref().map(|e| mention.scrub(e))),
            ))
            .execute(conn)?;
        unindex(conn, id)?;
        super::search_index::add(conn, id, format!("{subject}\n{full_text}"))?;
    }

    let tickets = diesel::update(tickets::table.filter(tickets::requester.eq(address)))
        .set(tickets::requester.eq(&placeholder))
        .execute(conn)?;
    let titled: Vec<Id> = diesel::sql_query("SELECT number AS id FROM tickets WHERE LOWER(subject) LIKE $1")
        .bind::<Text, _>(&like)
        .load(conn)?;
    for Id { id } in titled {
        let subject: String = tickets::table.find(id).select(tickets::subject).get_result(conn)?;
        diesel::update(tickets::table.find(id)).set(tickets::subject.eq(mention.scrub(&subject))).execute(conn)?;
    }

    // Raw mails: those of their messages, and any other that carries their address (a mail
    // they were copied on, a staff answer to them, one in quarantine).
    raw_ids.extend(raw_mails_containing(conn, address)?);
    raw_ids.sort_unstable();
    raw_ids.dedup();
    keep_files_of(conn, &raw_ids)?;
    diesel::update(messages::table.filter(messages::raw_mail_id.eq_any(&raw_ids)))
        .set(messages::raw_mail_id.eq(None::<i64>))
        .execute(conn)?;
    let raw_mails = diesel::delete(raw_mails::table.filter(raw_mails::id.eq_any(&raw_ids))).execute(conn)?;

    diesel::delete(watchers::table.filter(watchers::address.eq(address))).execute(conn)?;
    diesel::delete(sessions::table.filter(sessions::email.eq(address))).execute(conn)?;
    diesel::delete(login_tokens::table.filter(login_tokens::email.eq(address))).execute(conn)?;
    diesel::delete(reads::table.filter(reads::email.eq(address))).execute(conn)?;
    diesel::delete(saved_criteria::table.filter(saved_criteria::email.eq(address))).execute(conn)?;
    diesel::delete(undeliverable::table.filter(undeliverable::address.eq(address))).execute(conn)?;
    diesel::sql_query("DELETE FROM rate_events WHERE LOWER(key) LIKE $1").bind::<Text, _>(&like).execute(conn)?;
    // Mail to them, and any mail about them (a notification to staff carries their words): an
    // unsent notification about someone forgotten has nothing left to say.
    diesel::sql_query("DELETE FROM outbox WHERE LOWER(recipient) LIKE $1 OR LOWER(spec) LIKE $1")
        .bind::<Text, _>(&like)
        .execute(conn)?;
    delete_outbox_data_containing(conn, address)?;

    Ok(Forgotten { placeholder, messages: their_ids.len(), raw_mails, tickets })
}

/// An address in any case, and what replaces it.
struct Mention<'a> {
    pattern: regex::Regex,
    placeholder: &'a str,
}

impl<'a> Mention<'a> {
    fn new(address: &str, placeholder: &'a str) -> anyhow::Result<Mention<'a>> {
        let pattern = regex::RegexBuilder::new(&regex::escape(address)).case_insensitive(true).build()?;
        Ok(Mention { pattern, placeholder })
    }

    fn scrub(&self, text: &str) -> String {
        self.pattern.replace_all(text, regex::NoExpand(self.placeholder)).into_owned()
    }
}

/// Removes a message's words from the keyword index.
fn unindex(conn: &mut Conn, id: i64) -> anyhow::Result<()> {
    let sql = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => "DELETE FROM message_search WHERE message_id = $1",
        AnyConnection::Sqlite(_) => "DELETE FROM message_search WHERE rowid = $1",
    };
    diesel::sql_query(sql).bind::<BigInt, _>(id).execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The raw mails whose bytes contain `needle`, in any case.
fn raw_mails_containing(conn: &mut Conn, needle: &str) -> anyhow::Result<Vec<i64>> {
    let sql = match conn {
        #[cfg(feature = "postgres")]
        // `escape` keeps ASCII as it is (an address is ASCII), so LOWER sees every spelling.
        AnyConnection::Postgresql(_) => {
            "SELECT id FROM raw_mails WHERE position($1 in LOWER(encode(data, 'escape'))) > 0"
        }
        AnyConnection::Sqlite(_) => "SELECT id FROM raw_mails WHERE instr(LOWER(CAST(data AS TEXT)), $1) > 0",
    };
    let ids: Vec<Id> = diesel::sql_query(sql).bind::<Text, _>(needle.to_lowercase()).load(conn)?;
    Ok(ids.into_iter().map(|i| i.id).collect())
}

/// Composed outbox mails (rows queued before descriptions existed) that contain `needle`, in
/// any case.
fn delete_outbox_data_containing(conn: &mut Conn, needle: &str) -> anyhow::Result<()> {
    let sql = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => "DELETE FROM outbox WHERE position($1 in LOWER(encode(data, 'escape'))) > 0",
        AnyConnection::Sqlite(_) => "DELETE FROM outbox WHERE instr(LOWER(CAST(data AS TEXT)), $1) > 0",
    };
    diesel::sql_query(sql).bind::<Text, _>(needle.to_lowercase()).execute(conn)?;
    Ok(())
}

/// Files stored as a span of one of `raw_ids` get bytes of their own, before those raw mails
/// lose theirs (`store::messages::blob_data` decodes the span).
fn keep_files_of(conn: &mut Conn, raw_ids: &[i64]) -> anyhow::Result<()> {
    let pointing: Vec<String> =
        blobs::table.filter(blobs::raw_mail_id.eq_any(raw_ids)).select(blobs::sha256).load(conn)?;
    for sha in pointing {
        let data = super::messages::blob_data(conn, &sha)?;
        diesel::update(blobs::table.find(&sha))
            .set((
                blobs::data.eq(data),
                blobs::raw_mail_id.eq(None::<i64>),
                blobs::raw_start.eq(None::<i64>),
                blobs::raw_end.eq(None::<i64>),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// What retention writes in `raw_mails.reason` of a mail whose bytes it dropped.
pub const RAW_DROPPED: &str = "raw mail dropped by retention";

/// Drops the raw bytes of at most `limit` mails of tickets closed at `cutoff` or before (the row stays:
/// it keeps the mail's key, so that it is never ingested twice). Messages and files stay.
/// Returns how many it dropped; the caller repeats until 0.
pub fn drop_old_raw_mail(conn: &mut Conn, cutoff: i64, limit: i64) -> anyhow::Result<usize> {
    let found: Vec<Id> = diesel::sql_query(
        "SELECT r.id AS id FROM raw_mails r JOIN tickets t ON t.number = r.ticket_number \
         WHERE r.state = 'processed' AND r.reason IS NULL AND r.received_at <= $1 \
         AND t.status = 'closed' AND t.closed_at <= $1 ORDER BY r.id LIMIT $2",
    )
    .bind::<BigInt, _>(cutoff)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    let ids: Vec<i64> = found.into_iter().map(|i| i.id).collect();
    keep_files_of(conn, &ids)?;
    diesel::update(raw_mails::table.filter(raw_mails::id.eq_any(&ids)))
        .set((raw_mails::data.eq(&[][..]), raw_mails::reason.eq(RAW_DROPPED)))
        .execute(conn)?;
    Ok(ids.len())
}
