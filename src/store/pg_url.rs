//! The connection string given to libpq for `database.url`.
//!
//! libpq encrypts whenever the server offers TLS (`sslmode=prefer`, its default), also over
//! loopback, where encryption protects nothing and cost most of an ingest's time: one daemon
//! drained 402 mails/s over TLS to a PostgreSQL on 127.0.0.1 and 813 without (BENCHMARKS.md,
//! "Ingest", tenth round). A URL naming this machine without an `sslmode` is therefore given
//! `sslmode=disable`; an `sslmode` in the URL or in the environment (`PGSSLMODE`) is kept, and a
//! server elsewhere keeps libpq's default.

/// `url` as libpq should see it (see the module's comment).
pub fn connection_url(url: &str) -> String {
    if std::env::var_os("PGSSLMODE").is_some() || !names_this_machine_without_sslmode(url) {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

fn names_this_machine_without_sslmode(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return false };
    if parsed.query_pairs().any(|(key, _)| key == "sslmode") {
        return false;
    }
    match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        // A Unix socket: libpq never encrypts those.
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::names_this_machine_without_sslmode as local;

    #[test]
    fn only_a_loopback_server_without_sslmode_is_given_one() {
        assert!(local("postgres://postgres@127.0.0.1:5432/guichet"));
        assert!(local("postgres://guichet:secret@localhost/guichet?application_name=g"));
        assert!(local("postgresql://[::1]:5433/guichet"));
        assert!(local("postgres://127.0.0.2/guichet"));
        assert!(!local("postgres://postgres@127.0.0.1/guichet?sslmode=require"));
        assert!(!local("postgres://db.example.com/guichet"));
        assert!(!local("postgres://10.0.0.5/guichet"));
        assert!(!local("postgres:///guichet"));
        assert!(!local("not a url"));
        if std::env::var_os("PGSSLMODE").is_none() {
            assert_eq!(
                super::connection_url("postgres://u@localhost/db?application_name=g"),
                "postgres://u@localhost/db?application_name=g&sslmode=disable"
            );
            assert_eq!(super::connection_url("postgres://u@localhost/db"), "postgres://u@localhost/db?sslmode=disable");
        }
    }
}
