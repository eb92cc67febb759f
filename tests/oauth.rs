//! OAuth 2.0 for IMAP (SPEC §9) against the real Dovecot, which checks every token with the test's
//! identity provider (`common::identity`, tokens valid 20 s): `guichet oauth-login` completes the
//! device-code flow and keeps the refresh token; a daemon reads mail over XOAUTH2 for a minute,
//! across several token lifetimes and forced reconnections; app-only access by
//! `client_credentials` over OAUTHBEARER; a revoked refresh token shows in `status`; one login
//! serves IMAP and SMTP submission (XOAUTH2 through Postfix, checked by Dovecot).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::guichet::{Config, HELPDESK, eventually, mail};
use common::identity::{CLIENT_ID, CLIENT_SECRET, IdentityProvider};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);

/// A mailbox that logs in with OAuth at `idp`; `extra` adds or overrides keys.
fn oauth_mailbox(stack: &MailStack, idp: &IdentityProvider, extra: &str) -> String {
    format!(
        "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{HELPDESK}\"\n\
         processed_folder = \"Processed\"\npoll_seconds = 1\n\
         oauth_token_url = \"{}\"\noauth_device_url = \"{}\"\noauth_client_id = \"{CLIENT_ID}\"\n\
         oauth_scopes = [\"mail.read\", \"offline_access\"]\n{extra}\n",
        stack.imap_port,
        idp.token_url(),
        idp.device_url(),
    )
}

async fn setup(extra: &str) -> (MailStack, IdentityProvider, Config) {
    let stack = MailStack::start();
    let idp = IdentityProvider::start(HELPDESK).await;
    stack.set_oauth(&idp.introspection_url());
    let cfg = Config::new(&stack, "", &oauth_mailbox(&stack, &idp, extra));
    (stack, idp, cfg)
}

/// Runs `guichet oauth-login` as a person would: reads the code it prints, "types" it at the
/// provider (approves it there), and waits for the command to finish. Returns its output.
fn oauth_login(cfg: &Config, idp: &IdentityProvider) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("-c")
        .arg(&cfg.path)
        .args(["oauth-login", HELPDESK])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("guichet oauth-login starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("readable");
    // "To let guichet read mail as …, open URL and type CODE"
    let code = first.rsplit_once(" and type ").map(|(_, c)| c.trim().to_string()).expect(&first);
    assert!(first.contains(&format!("open {}/activate", idp.base)), "{first}");
    idp.approve(&code, HELPDESK);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "guichet oauth-login did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "guichet oauth-login failed: {err}");
    format!("{first}\n{}", rest.join("\n"))
}

fn stored_refresh_token(cfg: &Config) -> Option<String> {
    let store = guichet::store::Store::open_and_migrate(&cfg.database_url, 1).unwrap();
    store.read(|c| guichet::store::oauth_tokens::get(c, HELPDESK)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_login_completes_the_device_flow_and_keeps_the_refresh_token() {
    let (_stack, idp, cfg) = setup("auth = \"xoauth2\"").await;

    let output = tokio::task::block_in_place(|| oauth_login(&cfg, &idp));

    assert!(output.contains("Logged in"), "{output}");
    assert_eq!(idp.device_scope(), "mail.read offline_access");
    let issued = idp.refresh_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(stored_refresh_token(&cfg).as_deref(), Some(issued[0].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_reads_mail_over_xoauth2_across_three_token_lifetimes() {
    let (stack, idp, cfg) = setup("auth = \"xoauth2\"").await;
    tokio::task::block_in_place(|| oauth_login(&cfg, &idp));
    let daemon = cfg.start();

    // A mail every 4 s for a minute; every 9 s Dovecot closes the session, so the daemon logs in
    // again, each time with a token the provider still calls active.
    let began = Instant::now();
    let mut sent = 0;
    let mut last_kick = Instant::now();
    while began.elapsed() < Duration::from_secs(60) {
        sent += 1;
        let raw =
            mail("marie@customer.example", &format!("Panne {sent}"), &format!("o{sent}@customer.example"), "", "x");
        stack.smtp_send("marie@customer.example", &[HELPDESK], &raw).await.expect("accepted");
        if last_kick.elapsed() > Duration::from_secs(9) {
            stack.kick(HELPDESK);
            last_kick = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
    }

    eventually(WAIT, "every mail a ticket", || (cfg.tickets().len() == sent).then_some(())).await;
    let (active, inactive) = idp.introspected();
    assert!(active >= 4, "Dovecot checked {active} tokens (the daemon logged in again after each kick)");
    assert_eq!(inactive, 0, "the daemon never offered an expired token");
    let refreshes = idp.issued("refresh_token");
    assert!(refreshes >= 3, "{refreshes} access tokens by refresh over a minute of 20 s tokens");
    // The provider rotates the refresh token at every use: the database holds the latest one.
    assert_eq!(stored_refresh_token(&cfg), idp.refresh_tokens().first().cloned());
    assert!(!daemon.logs().contains("access-"), "an access token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_give_app_only_access_over_oauthbearer() {
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), format!("{CLIENT_SECRET}\n")).unwrap();
    let extra = format!(
        "auth = \"oauthbearer\"\noauth_grant = \"client_credentials\"\noauth_client_secret_file = \"{}\"",
        secret_file.path().display()
    );
    let (stack, idp, cfg) = setup(&extra).await;
    let _daemon = cfg.start();

    let raw = mail("marie@customer.example", "Imprimante", "cc1@customer.example", "", "Panne.");
    stack.smtp_send("marie@customer.example", &[HELPDESK], &raw).await.expect("accepted");

    let ticket = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(ticket["subject"], "Imprimante");
    assert!(idp.issued("client_credentials") >= 1);
    assert_eq!(idp.issued("refresh_token"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_shows_in_status_and_the_daemon_keeps_running() {
    let (stack, idp, cfg) = setup("auth = \"xoauth2\"").await;
    tokio::task::block_in_place(|| oauth_login(&cfg, &idp));
    idp.revoke(HELPDESK);

    let mut daemon = cfg.start();

    let error = eventually(WAIT, "the mailbox error in status", || {
        cfg.status()["mailboxes"][0]["last_error"].as_str().map(str::to_string)
    })
    .await;
    assert!(error.contains("refused") && error.contains("run guichet oauth-login support@example.com"), "{error}");
    // Logging in again mends it, without restarting the daemon.
    tokio::task::block_in_place(|| oauth_login(&cfg, &idp));
    let raw = mail("marie@customer.example", "Retour", "rv1@customer.example", "", "x");
    stack.smtp_send("marie@customer.example", &[HELPDESK], &raw).await.expect("accepted");
    eventually(Duration::from_secs(90), "ticket 1 after the new login", || cfg.ticket(1)).await;
    assert!(daemon.is_running());
    assert!(daemon.logs().contains("run guichet oauth-login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_serves_imap_and_smtp_submission_over_xoauth2() {
    let (stack, idp, cfg) = setup("auth = \"xoauth2\"").await;
    tokio::task::block_in_place(|| oauth_login(&cfg, &idp));
    let submission = stack.submission_port.to_string();
    let (token_url, smtp_port) = (idp.token_url(), submission.as_str());
    let _daemon = cfg.start_with(&[
        ("GUICHET__SMTP__PORT", smtp_port),
        ("GUICHET__SMTP__USERNAME", HELPDESK),
        ("GUICHET__SMTP__AUTH", "xoauth2"),
        ("GUICHET__SMTP__OAUTH_TOKEN_URL", token_url.as_str()),
        ("GUICHET__SMTP__OAUTH_CLIENT_ID", CLIENT_ID),
    ]);

    let raw = mail("marie@customer.example", "Imprimante", "sm1@customer.example", "", "Panne.");
    stack.smtp_send("marie@customer.example", &[HELPDESK], &raw).await.expect("accepted");

    // The acknowledgement reaches Marie through the submission port, logged in by XOAUTH2.
    stack.wait_for_messages("marie@customer.example", "INBOX", 1, WAIT).await;
    let log = stack.maillog();
    assert!(log.contains("sasl_method=XOAUTH2, sasl_username=support@example.com"), "{log}");
}
