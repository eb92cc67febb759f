//! `guichet backup FILE` and `guichet forget EMAIL`.

use anyhow::bail;

use crate::app::App;
use crate::domain::EmailAddress;

/// A consistent copy of a SQLite installation, while the daemon runs.
pub fn backup(app: &App, file: &std::path::Path) -> anyhow::Result<()> {
    app.store.backup_to(file)?;
    println!("{} → {}", app.settings.database.url, file.display());
    Ok(())
}

/// Erases a person (GDPR); prints what now stands for them.
pub fn forget(app: &App, email: &str) -> anyhow::Result<()> {
    let Some(address) = EmailAddress::parse(email) else { bail!("`{email}` is not an email address") };
    if app.desk.is_staff(&address) {
        bail!("{address} is a staff address (helpdesk.staff): remove it from the configuration first");
    }
    let f = app.store.forget(address.as_str())?;
    println!(
        "{address} forgotten: now {}; {} message(s) emptied, {} raw mail(s) erased, {} ticket(s) re-addressed",
        f.placeholder, f.messages, f.raw_mails, f.tickets
    );
    Ok(())
}
