//! `guichet-bench`: the benchmark driver behind `scripts/bench-ingest` and `scripts/bench-sender`.
//! Not part of the `guichet` binary; it talks to the private mail stack (`scripts/mail-stack`),
//! runs the real `guichet` binary (one or several daemons), and reads its database (SQLite, or
//! PostgreSQL when built with the `postgres` feature) to time what it does.
//!
//! - `fill`: N realistic mails APPENDed over several pipelined IMAP connections (LITERAL+);
//! - `ingest`: fill, optionally time Dovecot alone, start `guichet run`, time the drain of the
//!   backlog, then a steady stream at a fixed rate with per-mail latency (APPEND → committed row);
//! - `profile-ingest`: the same mix parsed and committed through the library, no IMAP (where the
//!   time goes);
//! - `sender`: N pending notifications drained into the real Postfix, then a 10,000-deep queue;
//! - `free-port`: prints a free loopback TCP port.
//!
//! Every metric is printed as one line: `name  value  unit`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use guichet::store::AnyConnection;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

#[derive(Parser)]
#[command(name = "guichet-bench", about = "Benchmarks of Guichet against the private mail stack")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// APPEND N realistic mails to a mailbox (pipelined, several connections)
    Fill {
        #[command(flatten)]
        imap: ImapArgs,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Fill, then time `guichet run` draining the backlog, then a steady stream's latency
    Ingest {
        #[command(flatten)]
        imap: ImapArgs,
        #[command(flatten)]
        mix: MixArgs,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Steady stream: mails per second appended while the daemon runs (0 = no stream)
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Steady stream: seconds
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Also time Dovecot alone: UID FETCH of the whole backlog, 100 per command, no database
        #[arg(long)]
        baseline: bool,
        /// `guichet run` daemons on the same database (each mailbox is read by one at a time)
        #[arg(long, default_value_t = 1)]
        daemons: usize,
        /// Configuration of each daemon, in order (comma-separated; default: `--config` for all)
        #[arg(long, value_delimiter = ',')]
        daemon_configs: Vec<PathBuf>,
        /// Each daemon's `web.metrics_listen` (comma-separated, in order): statements per mail
        /// are read from its `guichet_db_statements_total`
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// The mail stack's Dovecot master: its CPU (and its children's) per mail
        #[arg(long)]
        dovecot_pid: Option<u32>,
        /// Seconds after the drain at which the daemons' steady memory is read (0 = not read)
        #[arg(long, default_value_t = 15)]
        settle: u64,
    },
    /// Parse and commit the mix through the library (no IMAP): where the ingest time goes
    ProfileIngest {
        #[command(flatten)]
        mix: MixArgs,
        /// guichet configuration (its database is filled)
        #[arg(long)]
        config: PathBuf,
        /// Creates the (new) SQLite database with this page size first (experiment)
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Seed pending notifications, then time `guichet run` draining them into SMTP
    Sender {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Notifications in the first run
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Depth of the second queue (claim query time, memory, drain time); 0 = skip
        #[arg(long, default_value_t = 10_000)]
        queue: usize,
        /// Domain of the customers (Postfix should discard it)
        #[arg(long, default_value = "discard.example")]
        domain: String,
        /// The same configuration with [smtp] on a null SMTP server (smtp-sink): a last run of
        /// `count` notifications measures the sender without Postfix
        #[arg(long)]
        sink_config: Option<PathBuf>,
    },
    /// Prints a free loopback TCP port
    FreePort,
}

#[derive(Args, Clone)]
struct ImapArgs {
    #[arg(long, default_value = "127.0.0.1")]
    imap_host: String,
    #[arg(long)]
    imap_port: u16,
    #[arg(long, default_value = "support@example.com")]
    user: String,
    /// Spread the mails over these mailbox users (comma-separated; default: `--user` alone).
    /// Mail i goes to user i mod M; the fill's connections are shared out among them.
    #[arg(long, value_delimiter = ',')]
    mailbox_users: Vec<String>,
    #[arg(long, default_value = "secret")]
    password: String,
    #[arg(long, default_value = "INBOX")]
    folder: String,
    /// Parallel IMAP connections for the fill
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// APPENDs in flight per connection
    #[arg(long, default_value_t = 16)]
    window: usize,
}

impl ImapArgs {
    /// The mailbox users the mails are spread over (at least one).
    fn users(&self) -> Vec<String> {
        if self.mailbox_users.is_empty() { vec![self.user.clone()] } else { self.mailbox_users.clone() }
    }

    /// The same server, logged in as `user`.
    fn as_user(&self, user: &str) -> ImapArgs {
        ImapArgs { user: user.to_string(), ..self.clone() }
    }
}

#[derive(Args, Clone)]
struct MixArgs {
    /// Mails in the backlog
    #[arg(long, default_value_t = 5000)]
    count: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Instead of the mix: every mail carries one attachment of this many bytes (memory test)
    #[arg(long)]
    attachment_bytes: Option<usize>,
}

#[derive(Args, Clone)]
struct DaemonArgs {
    /// The guichet binary to run
    #[arg(long)]
    guichet: PathBuf,
    #[arg(long)]
    config: PathBuf,
    /// The SQLite file of that configuration
    #[arg(long, required_unless_present = "database_url", conflicts_with = "database_url")]
    db: Option<PathBuf>,
    /// Or its database URL (`sqlite://…`, or `postgres://…` with the `postgres` feature)
    #[arg(long)]
    database_url: Option<String>,
    /// Where the daemon's pid is written (so that the calling script can always stop it)
    #[arg(long)]
    pidfile: PathBuf,
    /// Daemon logs go here
    #[arg(long)]
    logdir: PathBuf,
    /// Gives up after this many seconds
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Fill { imap, mix } => {
            let plan = Plan::new(&mix, 0);
            let t = Instant::now();
            let bytes = fill(&imap, &plan, 0..plan.n_fill)?;
            let secs = t.elapsed().as_secs_f64();
            metric("fill_mails", plan.n_fill as f64, "mails");
            metric("fill_mb", mb(bytes), "MB");
            metric("fill_mails_per_s", plan.n_fill as f64 / secs, "mails/s");
            Ok(())
        }
        Cmd::Ingest {
            imap,
            mix,
            daemon,
            rate,
            seconds,
            baseline,
            daemons,
            daemon_configs,
            metrics,
            dovecot_pid,
            settle,
        } => {
            let configs: Vec<PathBuf> = (0..daemons.max(1))
                .map(|k| daemon_configs.get(k).cloned().unwrap_or_else(|| daemon.config.clone()))
                .collect();
            let extra = Observe { metrics, dovecot_pid, settle: Duration::from_secs(settle) };
            ingest_bench(&imap, &mix, &daemon, &configs, rate, seconds, baseline, &extra)
        }
        Cmd::ProfileIngest { mix, config, page_size } => profile_ingest(&mix, &config, page_size),
        Cmd::Sender { daemon, count, queue, domain, sink_config } => {
            sender_bench(&daemon, count, queue, &domain, sink_config.as_deref())
        }
        Cmd::FreePort => {
            println!("{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
            Ok(())
        }
    }
}

fn metric(name: &str, value: f64, unit: &str) {
    let v = if value.abs() >= 100.0 || value == value.trunc() { format!("{value:.0}") } else { format!("{value:.2}") };
    println!("{name:<36} {v:>12}  {unit}");
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

// ------------------------------------------------------------------------------------------------
// The mail mix

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Text,
    Alternative,
    Attachment,
    Reply { target: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Fr,
    En,
}

#[derive(Clone)]
struct Meta {
    kind: Kind,
    lang: Lang,
    customer: usize,
    subject: String,
    /// Approximate size of the body text (bytes).
    body_size: usize,
    /// Attachment size before base64 (bytes).
    attachment: usize,
    /// The ticket this mail should open, counting in APPEND order (replies: their target's).
    ticket_guess: usize,
}

/// A deterministic mix: mail `i` is always the same bytes for a given seed. The first `n_fill`
/// mails form the backlog, the rest the steady stream (whose replies answer backlog mails).
struct Plan {
    seed: u64,
    run: String,
    n_fill: usize,
    metas: Vec<Meta>,
}

const FIRST_NAMES: &[&str] = &[
    "Marie",
    "Jean",
    "Sophie",
    "Pierre",
    "Camille",
    "Luc",
    "Élodie",
    "François",
    "Chloé",
    "Nicolas",
    "Inès",
    "Hélène",
    "John",
    "Emma",
    "Oliver",
    "Grace",
    "Mathieu",
    "Zoé",
    "Agnès",
    "Thomas",
];
const LAST_NAMES: &[&str] = &[
    "Dupont",
    "Martin",
    "Lefèvre",
    "Bernard",
    "Moreau",
    "Girard",
    "Smith",
    "Brown",
    "Rousseau",
    "Fournier",
    "Lambert",
    "Bonnet",
    "Mercier",
    "Faure",
    "André",
    "Garnier",
    "Chevalier",
    "Taylor",
    "Wilson",
    "Roux",
];
const DOMAINS: &[&str] = &["customer.example", "cisa.example", "other.example", "example.org", "example.net"];

const FR_SUBJECTS: &[&str] = &[
    "Imprimante bloquée au deuxième étage",
    "Impossible de me connecter au VPN",
    "Facture n° 2026-1142 : montant erroné",
    "Erreur à l'export Excel des commandes",
    "Demande d'accès au dossier partagé Comptabilité",
    "Lenteurs sur l'application de gestion depuis la mise à jour",
    "Mot de passe expiré, compte verrouillé",
    "Problème de synchronisation du calendrier",
    "Question sur le renouvellement du contrat de maintenance",
    "Écran noir au démarrage du poste n° 12",
];
const EN_SUBJECTS: &[&str] = &[
    "Printer stuck on the second floor",
    "Cannot connect to the VPN since this morning",
    "Invoice 2026-1142 shows the wrong amount",
    "Excel export of orders fails with an error",
    "Access request for the shared Accounting folder",
    "Application very slow since the last update",
    "Password expired and account locked",
    "Calendar does not synchronise on my phone",
    "Question about the maintenance contract renewal",
    "Black screen when starting workstation 12",
];
const FR_SENTENCES: &[&str] = &[
    "Depuis ce matin, l'imprimante du deuxième étage affiche une erreur « bourrage papier » alors qu'aucune feuille n'est coincée.",
    "Nous avons redémarré le poste et vérifié les câbles, sans succès.",
    "Le message d'erreur indique que le service n'est pas joignable et nous invite à contacter l'administrateur.",
    "Pourriez-vous regarder ce problème rapidement ? Toute l'équipe comptable est bloquée.",
    "J'ai essayé de vider le cache du navigateur comme indiqué dans la documentation, mais rien n'a changé.",
    "La mise à jour a été installée vendredi dernier par votre technicien.",
    "Je vous joins une capture d'écran du message affiché au démarrage.",
    "Le problème se produit uniquement sur les postes Windows ; les Mac fonctionnent normalement.",
    "Nous avons besoin de cet accès avant la clôture mensuelle de jeudi.",
    "Merci de me tenir informée de l'avancement, je suis joignable au 01 23 45 67 89.",
    "Cela fait la troisième fois ce mois-ci que nous rencontrons cette difficulté.",
    "L'export génère un fichier vide de 0 octet au lieu du tableau habituel.",
    "Après la saisie du mot de passe, la page se recharge et revient à l'écran de connexion.",
    "Notre responsable souhaiterait également connaître le délai d'intervention prévu.",
    "Les factures émises depuis le 15 novembre comportent une TVA à 5,5 % au lieu de 20 %.",
    "Je reste à votre disposition pour toute information complémentaire.",
];
const EN_SENTENCES: &[&str] = &[
    "Since this morning the printer on the second floor reports a paper jam although no sheet is stuck.",
    "We restarted the workstation and checked every cable, without success.",
    "The error message says the service cannot be reached and asks us to contact the administrator.",
    "Could you look into this quickly? The whole accounting team is blocked.",
    "I tried clearing the browser cache as the documentation suggests, but nothing changed.",
    "The update was installed last Friday by your technician.",
    "I attach a screenshot of the message shown at start-up.",
    "The problem only happens on Windows machines; the Macs work normally.",
    "We need this access before Thursday's month-end closing.",
    "Please keep me posted; I can be reached on +44 20 7946 0958.",
    "This is the third time this month that we run into this issue.",
    "The export produces an empty file of 0 bytes instead of the usual spreadsheet.",
    "After typing the password the page reloads and goes back to the login screen.",
    "My manager would also like to know the expected response time.",
    "Invoices issued since 15 November show 5.5% VAT instead of 20%.",
    "I remain at your disposal for any further information.",
];
const ATTACHMENTS: &[(&str, &str)] = &[
    ("capture-ecran.png", "image/png"),
    ("facture-2026-11.pdf", "application/pdf"),
    ("journal-erreurs.zip", "application/zip"),
    ("photo_imprimante.jpg", "image/jpeg"),
    ("export-commandes.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("Compte rendu réunion.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
];
const AGENTS: &[&str] =
    &["Mozilla Thunderbird 128.5.0", "Microsoft Outlook 16.0", "Apple Mail (2.3776.700.51)", "Roundcube Webmail/1.6.9"];

impl Plan {
    /// `n_fill` backlog mails, then `n_stream` stream mails.
    fn new(mix: &MixArgs, n_stream: usize) -> Plan {
        let (seed, n_fill) = (mix.seed, mix.count);
        let mut rng = StdRng::seed_from_u64(seed);
        let run = format!("{:08x}", rand::random::<u32>());
        let customers = (n_fill + n_stream) / 4 + 10;
        let mut metas: Vec<Meta> = Vec::with_capacity(n_fill + n_stream);
        let mut tickets = 0usize;
        for i in 0..n_fill + n_stream {
            let roll = rng.random_range(0..100);
            let lang = if rng.random_range(0..100) < 65 { Lang::Fr } else { Lang::En };
            // Backlog replies answer a mail at least 100 earlier (the backlog is appended over
            // several connections: not quite in this order); stream replies answer the backlog.
            let reply_pool = if i < n_fill { i.saturating_sub(100) } else { n_fill };
            let kind = if roll < 10 && reply_pool > 0 {
                let mut target = rng.random_range(reply_pool.saturating_sub(400)..reply_pool);
                while let Kind::Reply { target: t } = metas[target].kind {
                    target = t;
                }
                Kind::Reply { target }
            } else if roll < 30 {
                Kind::Attachment
            } else if roll < 65 {
                Kind::Text
            } else {
                Kind::Alternative
            };
            let (customer, subject, ticket_guess, lang) = match kind {
                Kind::Reply { target } => {
                    let t = &metas[target];
                    (t.customer, t.subject.clone(), t.ticket_guess, t.lang)
                }
                _ => {
                    tickets += 1;
                    let subjects = if lang == Lang::Fr { FR_SUBJECTS } else { EN_SUBJECTS };
                    let subject = subjects[rng.random_range(0..subjects.len())].to_string();
                    (rng.random_range(0..customers), subject, tickets, lang)
                }
            };
            let body_size = match kind {
                Kind::Text | Kind::Alternative => rng.random_range(2_000..20_000),
                Kind::Attachment => rng.random_range(1_000..6_000),
                Kind::Reply { .. } => rng.random_range(1_000..8_000),
            };
            // Log-uniform between 50 KB and 1.5 MB (median ≈ 270 KB, mean ≈ 425 KB): most attachments
            // are small, a few are large.
            let kind = if mix.attachment_bytes.is_some() { Kind::Attachment } else { kind };
            let attachment = if let Some(size) = mix.attachment_bytes {
                size
            } else if kind == Kind::Attachment {
                rng.random_range(50_000f64.ln()..1_500_000f64.ln()).exp() as usize
            } else {
                0
            };
            metas.push(Meta { kind, lang, customer, subject, body_size, attachment, ticket_guess });
        }
        Plan { seed, run, n_fill, metas }
    }

    fn len(&self) -> usize {
        self.metas.len()
    }

    fn message_id(&self, i: usize) -> String {
        format!("bench-{}-{i}@mail.{}", self.run, self.customer_domain(self.metas[i].customer))
    }

    fn customer_domain(&self, c: usize) -> &'static str {
        DOMAINS[c % DOMAINS.len()]
    }

    fn customer(&self, c: usize) -> (String, String) {
        let first = FIRST_NAMES[c % FIRST_NAMES.len()];
        let last = LAST_NAMES[(c / FIRST_NAMES.len()) % LAST_NAMES.len()];
        let local = format!("{}.{}{}", ascii_fold(first), ascii_fold(last), c / 400);
        (format!("{first} {last}"), format!("{local}@{}", self.customer_domain(c)))
    }

    /// The raw bytes of mail `i` (CRLF line ends).
    fn render(&self, i: usize) -> Vec<u8> {
        let m = &self.metas[i];
        let mut rng = StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (name, addr) = self.customer(m.customer);
        let domain = self.customer_domain(m.customer);
        let mid = self.message_id(i);
        let now = chrono::Utc::now();
        let date = now.to_rfc2822();
        let token = format!("[Ticket #{}]", m.ticket_guess);
        let subject = match m.kind {
            Kind::Reply { .. } => {
                if m.lang == Lang::Fr {
                    format!("RE: {token} {}", m.subject)
                } else {
                    format!("Re: {token} {}", m.subject)
                }
            }
            _ => m.subject.clone(),
        };
        let agent = AGENTS[rng.random_range(0..AGENTS.len())];
        let mut h = String::with_capacity(4096);
        h.push_str(&format!("Return-Path: <{addr}>\r\n"));
        h.push_str("Delivered-To: support@example.com\r\n");
        h.push_str(&format!(
            "Received: from mx.example.com (mx.example.com [192.0.2.25])\r\n\tby imap.example.com with LMTP id {:x}\r\n\tfor <support@example.com>; {date}\r\n",
            rng.random::<u64>()
        ));
        h.push_str(&format!(
            "Received: from smtp.{domain} (smtp.{domain} [198.51.100.{}])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n\tby mx.example.com (Postfix) with ESMTPS id 4Zk{:X}\r\n\tfor <support@example.com>; {date}\r\n",
            rng.random_range(1..250),
            rng.random::<u32>()
        ));
        h.push_str(&format!(
            "Authentication-Results: mx.example.com;\r\n\tdkim=pass header.d={domain} header.s=s2026 header.b=Ab3dEf9h;\r\n\tspf=pass (mx.example.com: domain of {addr} designates 198.51.100.7 as permitted sender) smtp.mailfrom={addr};\r\n\tdmarc=pass (p=QUARANTINE) header.from={domain}\r\n"
        ));
        let mut sig = vec![0u8; 192];
        rng.fill_bytes(&mut sig);
        let sig = base64::engine::general_purpose::STANDARD.encode(&sig);
        h.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s2026;\r\n\tt={}; h=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb={}\r\n\t {}\r\n\t {}\r\n",
            now.timestamp(),
            &sig[..86],
            &sig[86..172],
            &sig[172..]
        ));
        h.push_str(&format!("From: {} <{addr}>\r\n", encode_word(&name)));
        h.push_str("To: Support <support@example.com>\r\n");
        h.push_str(&format!("Subject: {}\r\n", encode_word(&subject)));
        h.push_str(&format!("Date: {date}\r\n"));
        h.push_str(&format!("Message-ID: <{mid}>\r\n"));
        if let Kind::Reply { target } = m.kind {
            let parent = self.message_id(target);
            h.push_str(&format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"));
        }
        h.push_str(&format!("User-Agent: {agent}\r\n"));
        h.push_str(&format!("Content-Language: {}\r\n", if m.lang == Lang::Fr { "fr-FR" } else { "en-GB" }));
        h.push_str("MIME-Version: 1.0\r\n");

        let mut text = prose(&mut rng, m.lang, m.body_size, &name);
        if let Kind::Reply { target } = m.kind {
            let quoted = prose(&mut rng, m.lang, m.body_size / 2 + 500, &name);
            let when = if m.lang == Lang::Fr {
                format!("Le lun. 30 nov. 2026 à 09:{:02}, {name} <{addr}> a écrit :", target % 60)
            } else {
                format!("On Mon, 30 Nov 2026 at 09:{:02}, {name} <{addr}> wrote:", target % 60)
            };
            text.push_str("\n\n");
            text.push_str(&when);
            text.push('\n');
            for line in quoted.lines() {
                text.push_str("> ");
                text.push_str(line);
                text.push('\n');
            }
        }
        let boundary = format!("----=_Part_{:016x}", rng.random::<u64>());
        let mut body = String::new();
        match m.kind {
            Kind::Text | Kind::Reply { .. } => {
                h.push_str(&text_part_headers(&mut rng));
                body.push_str(&encode_text(&text, &h));
            }
            Kind::Alternative => {
                h.push_str(&format!("Content-Type: multipart/alternative;\r\n\tboundary=\"{boundary}\"\r\n"));
                let text_headers = text_part_headers(&mut rng);
                body.push_str(&format!("This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"));
                body.push_str(&text_headers);
                body.push_str("\r\n");
                body.push_str(&encode_text(&text, &text_headers));
                body.push_str(&format!("\r\n--{boundary}\r\n"));
                body.push_str(
                    "Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                );
                body.push_str(&quoted_printable(&html_of(&text)));
                body.push_str(&format!("\r\n--{boundary}--\r\n"));
            }
            Kind::Attachment => {
                h.push_str(&format!("Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n"));
                let text_headers = text_part_headers(&mut rng);
                body.push_str(&format!("This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"));
                body.push_str(&text_headers);
                body.push_str("\r\n");
                body.push_str(&encode_text(&text, &text_headers));
                let (file, ctype) = ATTACHMENTS[rng.random_range(0..ATTACHMENTS.len())];
                let disposition = if file.is_ascii() {
                    format!("attachment;\r\n\tfilename=\"{file}\"")
                } else {
                    format!("attachment;\r\n\tfilename*=UTF-8''{}", percent(file))
                };
                body.push_str(&format!(
                    "\r\n--{boundary}\r\nContent-Type: {ctype};\r\n\tname=\"{}\"\r\nContent-Disposition: {disposition}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    ascii_fold(file)
                ));
                let mut data = vec![0u8; m.attachment];
                rng.fill_bytes(&mut data);
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                body.reserve(b64.len() + b64.len() / 38 + 64);
                for chunk in b64.as_bytes().chunks(76) {
                    body.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                    body.push_str("\r\n");
                }
                body.push_str(&format!("--{boundary}--\r\n"));
            }
        }
        let mut out = Vec::with_capacity(h.len() + body.len() + 2);
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }
}

fn text_part_headers(rng: &mut StdRng) -> String {
    if rng.random_range(0..100) < 60 {
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            .to_string()
    } else {
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n".to_string()
    }
}

fn encode_text(text: &str, headers: &str) -> String {
    if headers.contains("quoted-printable") { quoted_printable(text) } else { text.replace('\n', "\r\n") }
}

/// Paragraphs of prose of about `size` bytes, with a greeting and a signature.
fn prose(rng: &mut StdRng, lang: Lang, size: usize, name: &str) -> String {
    let (sentences, hello, bye) = match lang {
        Lang::Fr => (FR_SENTENCES, "Bonjour,", "Cordialement,"),
        Lang::En => (EN_SENTENCES, "Hello,", "Best regards,"),
    };
    let mut s = String::with_capacity(size + 256);
    s.push_str(hello);
    s.push_str("\n\n");
    while s.len() < size {
        let mut line = String::new();
        for _ in 0..rng.random_range(2..6) {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(sentences[rng.random_range(0..sentences.len())]);
        }
        // Wrapped at 72 columns, as mail clients do.
        let mut col = 0;
        for word in line.split(' ') {
            let w = word.chars().count();
            if col > 0 && col + 1 + w > 72 {
                s.push('\n');
                col = 0;
            } else if col > 0 {
                s.push(' ');
                col += 1;
            }
            s.push_str(word);
            col += w;
        }
        s.push_str("\n\n");
    }
    s.push_str(bye);
    s.push_str("\n-- \n");
    s.push_str(name);
    s.push_str("\nService comptabilité — Tél. 01 23 45 67 89\n");
    s
}

fn html_of(text: &str) -> String {
    let mut html = String::with_capacity(text.len() * 2);
    html.push_str("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"></head>\n<body style=\"font-family: Calibri, Arial, sans-serif; font-size: 11pt;\">\n<div dir=\"ltr\">\n");
    for para in text.split("\n\n") {
        html.push_str("<p style=\"margin: 0 0 10px 0;\">");
        for (k, line) in para.lines().enumerate() {
            if k > 0 {
                html.push_str("<br>\n");
            }
            html.push_str(&line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
        }
        html.push_str("</p>\n");
    }
    html.push_str("</div>\n</body></html>\n");
    html
}

/// Quoted-printable (RFC 2045) with CRLF line ends and soft breaks at 76 columns.
fn quoted_printable(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split('\n') {
        let mut col = 0;
        let bytes = line.as_bytes();
        for (k, &b) in bytes.iter().enumerate() {
            let last = k + 1 == bytes.len();
            let literal = (b == b' ' && !last) || ((b'!'..=b'~').contains(&b) && b != b'=');
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                out.push('=');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
            col += width;
        }
        out.push_str("\r\n");
    }
    out
}

/// RFC 2047 encoded word when needed.
fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' => 'e',
            'É' => 'E',
            'à' => 'a',
            'ç' => 'c',
            'ï' | 'î' => 'i',
            'ô' => 'o',
            c => c,
        })
        .filter(|c| c.is_ascii() && *c != ' ')
        .collect::<String>()
        .to_lowercase()
}

// ------------------------------------------------------------------------------------------------
// IMAP APPEND, pipelined (LITERAL+): a writer and a reader per connection

/// A mail to APPEND: its position in the plan, its bytes, and when to send it (None: at once).
type ToAppend = (usize, Vec<u8>, Option<Instant>);

struct Appended {
    /// When the APPEND command was written.
    sent: Instant,
    /// When the server's tagged OK was read.
    ok: Instant,
}

/// Opens a connection and logs in; checks LITERAL+ (needed to pipeline APPENDs).
fn imap_login(a: &ImapArgs) -> anyhow::Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect((a.imap_host.as_str(), a.imap_port))
        .with_context(|| format!("cannot connect to IMAP {}:{}", a.imap_host, a.imap_port))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("* OK") {
        bail!("IMAP greeting: {line}");
    }
    let mut w = stream.try_clone()?;
    write!(w, "l1 LOGIN \"{}\" \"{}\"\r\n", a.user, a.password)?;
    let mut caps = line.clone();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("IMAP connection closed during LOGIN");
        }
        caps.push_str(&line);
        if line.starts_with("l1 ") {
            if !line.starts_with("l1 OK") {
                bail!("IMAP LOGIN: {line}");
            }
            break;
        }
    }
    if !caps.contains("LITERAL+") {
        bail!("the IMAP server does not announce LITERAL+ (needed to pipeline APPENDs)");
    }
    Ok((stream, reader))
}

/// APPENDs `mails` (position, bytes, optional send time) on one connection with up to `window`
/// commands in flight; `group` mails per command (MULTIAPPEND, RFC 3502: Dovecot saves them in one
/// transaction, one lock and one sync of the mailbox instead of one per mail; a timed stream uses
/// 1). Returns the send and OK times by position.
fn append_connection(
    a: &ImapArgs,
    mails: impl Iterator<Item = ToAppend>,
    total: usize,
    group: usize,
) -> anyhow::Result<Vec<(usize, Appended)>> {
    let (mut stream, mut reader) = imap_login(a)?;
    let (slot_tx, slot_rx) = std::sync::mpsc::sync_channel::<()>(a.window.max(1));
    // Tag (the first position of a command) → the positions that command carries.
    let commands: Arc<Mutex<HashMap<usize, Vec<usize>>>> = Arc::default();
    let commands2 = commands.clone();
    let mut sent_at: HashMap<usize, Instant> = HashMap::with_capacity(total);
    let reader_thread = std::thread::spawn(move || -> anyhow::Result<Vec<(usize, Instant)>> {
        let mut done = Vec::with_capacity(total);
        let mut line = String::new();
        while done.len() < total {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("IMAP connection closed with {} APPENDs unanswered", total - done.len());
            }
            let Some(rest) = line.strip_prefix('a') else { continue };
            let Some((tag, answer)) = rest.split_once(' ') else { continue };
            let Ok(tag) = tag.parse::<usize>() else { continue };
            if !answer.starts_with("OK") {
                bail!("APPEND refused: {}", line.trim_end());
            }
            let now = Instant::now();
            let positions = commands2.lock().unwrap().remove(&tag).unwrap_or_default();
            done.extend(positions.into_iter().map(|p| (p, now)));
            let _ = slot_rx.recv();
        }
        Ok(done)
    });
    let mut written = 0usize;
    let mut mails = mails.peekable();
    while mails.peek().is_some() {
        let batch: Vec<ToAppend> = mails.by_ref().take(group.max(1)).collect();
        if let Some(at) = batch[0].2 {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
        if slot_tx.send(()).is_err() {
            break; // the reader stopped: its error is reported below
        }
        let tag = batch[0].0;
        commands.lock().unwrap().insert(tag, batch.iter().map(|m| m.0).collect());
        let mut ok = write!(stream, "a{tag} APPEND {}", a.folder).is_ok();
        let now = Instant::now();
        for (pos, data, _) in &batch {
            sent_at.insert(*pos, now);
            ok = ok && write!(stream, " {{{}+}}\r\n", data.len()).is_ok() && stream.write_all(data).is_ok();
        }
        if !(ok && stream.write_all(b"\r\n").is_ok()) {
            break;
        }
        written += batch.len();
    }
    drop(slot_tx);
    let done = reader_thread.join().map_err(|_| anyhow::anyhow!("IMAP reader panicked"))??;
    if written != total {
        bail!("only {written} of {total} APPENDs written");
    }
    let _ = stream.write_all(b"z LOGOUT\r\n");
    Ok(done.into_iter().map(|(pos, ok)| (pos, Appended { sent: sent_at[&pos], ok })).collect())
}

/// APPENDs the plan's mails `range` over `conns` connections, as fast as the server takes them.
/// With several mailbox users, mail i goes to user i mod M, and connection c logs in as user
/// c mod M (at least one connection per user). Mails are generated on the fly by each
/// connection's thread. Returns the bytes appended.
fn fill(a: &ImapArgs, plan: &Plan, range: std::ops::Range<usize>) -> anyhow::Result<u64> {
    let users = a.users();
    let m = users.len();
    let conns = a.conns.max(m);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (u, k) = (c % m, c / m);
                let of_user = (conns - u).div_ceil(m);
                let positions: Vec<usize> = range.clone().filter(|i| i % m == u && (i / m) % of_user == k).collect();
                let (bytes, plan) = (&bytes, plan);
                let a = a.as_user(&users[u]);
                s.spawn(move || {
                    let total = positions.len();
                    let mails = positions.into_iter().map(move |i| {
                        let data = plan.render(i);
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        (i, data, None)
                    });
                    append_connection(&a, mails, total, 10)
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(bytes.into_inner())
}

// ------------------------------------------------------------------------------------------------
// The daemon and its database

struct Daemon {
    child: Child,
    pidfile: PathBuf,
}

impl Daemon {
    /// `guichet -c config run`, logging to `guichet-{label}.log`, its pid written to `pidfile`.
    fn start(d: &DaemonArgs, config: &Path, label: &str, pidfile: &Path) -> anyhow::Result<Daemon> {
        let log = std::fs::File::create(d.logdir.join(format!("guichet-{label}.log")))?;
        let child = Command::new(&d.guichet)
            .arg("-c")
            .arg(config)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info,async_imap=warn,lettre=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", d.guichet.display()))?;
        std::fs::write(pidfile, child.id().to_string())?;
        Ok(Daemon { child, pidfile: pidfile.to_path_buf() })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// (VmRSS, VmHWM) in kB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU seconds used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields after the command: state(0) … utime(11) stime(12); USER_HZ is 100 on Linux.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// SIGTERM, then waits (SIGKILL after 30 s). True when it exited 0.
    fn stop(mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ok = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break false;
                }
            }
        };
        let _ = std::fs::remove_file(&self.pidfile);
        ok
    }
}

/// Peaks of the daemon's resident memory, sampled every 25 ms (kB): VmRSS, and its private part
/// (RssAnon: heap, buffers) apart from file pages (RssFile: the binary, and the SQLite file that
/// `PRAGMA mmap_size` maps, which the kernel can drop at any time).
#[derive(Default, Clone, Copy)]
struct RssPeaks {
    rss: u64,
    anon: u64,
    file: u64,
}

struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<RssPeaks>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = RssPeaks::default();
            while !s.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                        .unwrap_or(0)
                };
                peak.rss = peak.rss.max(field("VmRSS:"));
                peak.anon = peak.anon.max(field("RssAnon:"));
                peak.file = peak.file.max(field("RssFile:"));
                std::thread::sleep(Duration::from_millis(25));
            }
            peak
        });
        RssSampler { stop, handle }
    }

    fn finish(self) -> RssPeaks {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl DaemonArgs {
    /// The database URL of the daemons' configuration.
    fn url(&self) -> String {
        match (&self.database_url, &self.db) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => format!("sqlite://{}", path.display()),
            (None, None) => String::new(), // clap requires one of them
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection inside an [`AnyConnection`] (raw SQL
/// is checked per backend; the placeholders differ: `?` on SQLite, `$1` on PostgreSQL).
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql($c) => $body,
            AnyConnection::Sqlite($c) => $body,
        }
    };
}

/// A reader on the daemons' database: their SQLite file (WAL: it never blocks the daemon's
/// writer) or their PostgreSQL database. Waits until the daemon has created `raw_mails`.
fn open_db(url: &str, timeout: Duration) -> anyhow::Result<AnyConnection> {
    if url.starts_with("postgres") && !cfg!(feature = "postgres") {
        bail!("{url}: this guichet-bench was built without the `postgres` feature");
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = connect_db(url)
            && count(&mut c, "SELECT count(*) AS n FROM raw_mails").is_ok()
        {
            return Ok(c);
        }
        if Instant::now() > deadline {
            bail!("database {url} not ready after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect_db(url: &str) -> anyhow::Result<AnyConnection> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !Path::new(path).exists() {
            bail!("{path} does not exist yet");
        }
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute("PRAGMA busy_timeout = 10000;")?;
        return Ok(AnyConnection::Sqlite(c));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(url)?;
        // Told apart from the daemons' connections in pg_stat_activity.
        c.batch_execute("SET application_name = 'guichet-bench'")?;
        return Ok(AnyConnection::Postgresql(c));
    }
    bail!("unsupported database URL {url}")
}

fn count(c: &mut AnyConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(on_backend!(c, c => diesel::sql_query(sql).get_result::<CountRow>(c)?.n))
}

/// The mean size of the outbox's mails as the sender composes them (the first 200: the outbox
/// keeps descriptions, `notify::pending`), with the compiled-in templates.
fn mean_mail_bytes(c: &mut AnyConnection) -> anyhow::Result<f64> {
    use guichet::store::outbox::OutboxRow;
    use guichet::store::schema::outbox;
    let rows: Vec<OutboxRow> = outbox::table.order(outbox::id).limit(200).select(OutboxRow::as_select()).load(c)?;
    let renderer = guichet::notify::render::Renderer::new(None)?;
    let mut total = 0;
    for row in &rows {
        let mail = guichet::notify::pending::mail_of(c, &renderer, row)?;
        total += mail.map_err(|e| anyhow::anyhow!("cannot compose notification {}: {}", row.id, e.0))?.len();
    }
    Ok(if rows.is_empty() { 0.0 } else { total as f64 / rows.len() as f64 })
}

fn outbox_states(c: &mut AnyConnection) -> anyhow::Result<HashMap<String, i64>> {
    let sql = "SELECT state, count(*) AS n FROM outbox GROUP BY state";
    let rows: Vec<StateRow> = on_backend!(c, c => diesel::sql_query(sql).load(c)?);
    Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
}

/// The raw mails committed after `last` (id order): (id, message key).
fn raw_mails_after(c: &mut AnyConnection, last: i64) -> anyhow::Result<Vec<(i64, String)>> {
    use guichet::store::schema::raw_mails::dsl as r;
    let q = r::raw_mails.filter(r::id.gt(last)).order(r::id).select((r::id, r::message_key));
    Ok(on_backend!(c, c => q.load(c)?))
}

/// Per mailbox (the `source` of its raw mails): mails committed, and the lease holder now.
fn per_mailbox(c: &mut AnyConnection) -> anyhow::Result<Vec<(String, i64, Option<String>)>> {
    use guichet::store::schema::mailbox_state::dsl as m;
    let rows: Vec<StateRow> = on_backend!(c, c => {
        diesel::sql_query("SELECT source AS state, count(*) AS n FROM raw_mails GROUP BY source").load(c)?
    });
    let q = m::mailbox_state.select((m::name, m::lease_holder));
    let holders: HashMap<String, Option<String>> = on_backend!(c, c => q.load(c)?).into_iter().collect();
    let mut out: Vec<_> =
        rows.into_iter().map(|r| (r.state.clone(), r.n, holders.get(&r.state).cloned().flatten())).collect();
    out.sort();
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Ingest

/// What the ingest benchmark reads besides the database and the daemons' /proc.
struct Observe {
    /// The daemons' metrics addresses.
    metrics: Vec<String>,
    dovecot_pid: Option<u32>,
    /// When the steady memory is read after the drain.
    settle: Duration,
}

/// A counter of a daemon's /metrics (`None`: not served, or not there).
fn scrape(address: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(address).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).ok()?;
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// CPU seconds of a process and of its children, living (from /proc) or reaped (its cutime).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let fields = |pid: u32| -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(stat.rsplit_once(") ")?.1.split_whitespace().map(str::to_string).collect())
    };
    let ticks = |f: &[String], k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let Some(own) = fields(pid) else { return 0.0 };
    // utime(11) stime(12) cutime(13) cstime(14), after the command.
    let mut total = ticks(&own, 11) + ticks(&own, 12) + ticks(&own, 13) + ticks(&own, 14);
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        let Ok(dir) = std::fs::read_dir("/proc") else { break };
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Some(f) = fields(child) else { continue };
            if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
                total += ticks(&f, 11) + ticks(&f, 12) + ticks(&f, 13) + ticks(&f, 14);
                parents.push(child);
            }
        }
    }
    total / 100.0
}

#[allow(clippy::too_many_arguments)]
fn ingest_bench(
    a: &ImapArgs,
    mix: &MixArgs,
    d: &DaemonArgs,
    configs: &[PathBuf],
    rate: u32,
    seconds: u32,
    baseline: bool,
    observe: &Observe,
) -> anyhow::Result<()> {
    let n_stream = (rate * seconds) as usize;
    let plan = Plan::new(mix, n_stream);
    let n = plan.n_fill;
    let users = a.users();
    let url = d.url();
    let kinds = |f: &dyn Fn(&Kind) -> bool| plan.metas[..n].iter().filter(|m| f(&m.kind)).count();
    eprintln!(
        "bench: backlog of {n} mails: {} text, {} text+HTML, {} with an attachment, {} replies; {} mailbox(es), {} daemon(s)",
        kinds(&|k| *k == Kind::Text),
        kinds(&|k| *k == Kind::Alternative),
        kinds(&|k| *k == Kind::Attachment),
        kinds(&|k| matches!(k, Kind::Reply { .. })),
        users.len(),
        configs.len()
    );

    // 1. The backlog.
    let t = Instant::now();
    let bytes = fill(a, &plan, 0..n)?;
    let fill_secs = t.elapsed().as_secs_f64();
    metric("fill_mails", n as f64, "mails");
    metric("fill_mb", mb(bytes), "MB");
    metric("fill_mean_mail_kb", bytes as f64 / n as f64 / 1000.0, "kB");
    metric("fill_append_rate", n as f64 / fill_secs, "mails/s (pipelined IMAP connections, MULTIAPPEND of 10)");

    if baseline {
        let (mut fetched, mut fetched_bytes, mut secs) = (0, 0, 0.0);
        for user in &users {
            let (f, b, s) = dovecot_baseline(&a.as_user(user))?;
            (fetched, fetched_bytes, secs) = (fetched + f, fetched_bytes + b, secs + s);
        }
        metric(
            "dovecot_fetch_mails_per_s",
            fetched as f64 / secs,
            "mails/s (UID FETCH BODY.PEEK[], 100 per command, no database)",
        );
        metric("dovecot_fetch_mb_per_s", mb(fetched_bytes) / secs, "MB/s");
    }

    // 2. The daemons drain the backlog.
    let dovecot0 = observe.dovecot_pid.map(tree_cpu_seconds);
    let t0 = Instant::now();
    let mut daemons = Vec::new();
    for (k, config) in configs.iter().enumerate() {
        let (label, pidfile) = if k == 0 {
            ("ingest".to_string(), d.pidfile.clone())
        } else {
            (format!("ingest-{}", k + 1), PathBuf::from(format!("{}.{}", d.pidfile.display(), k + 1)))
        };
        daemons.push(Daemon::start(d, config, &label, &pidfile)?);
    }
    let samplers: Vec<RssSampler> = daemons.iter().map(|x| RssSampler::start(x.pid())).collect();
    let mut db = open_db(&url, Duration::from_secs(60))?;
    let pg = PgSampler::start(&url)?;
    let deadline = t0 + Duration::from_secs(d.timeout);
    let mut first: Option<Instant> = None;
    let mut last_count = 0;
    let done = loop {
        let c = count(&mut db, "SELECT count(*) AS n FROM raw_mails")?;
        if c > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if c != last_count {
            last_count = c;
        }
        if c as usize >= n {
            break Instant::now();
        }
        if !daemons.iter_mut().all(Daemon::alive) {
            bail!("guichet run exited with {last_count} of {n} mails ingested (see {})", d.logdir.display());
        }
        if Instant::now() > deadline {
            bail!("timed out with {last_count} of {n} mails ingested");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpus: Vec<f64> = daemons.iter().map(Daemon::cpu_seconds).collect();
    let cpu_backlog: f64 = cpus.iter().sum();
    let dovecot_cpu = observe.dovecot_pid.map(tree_cpu_seconds).zip(dovecot0).map(|(after, before)| after - before);
    let statements = |name: &str| observe.metrics.iter().map(|m| scrape(m, name)).sum::<Option<f64>>();
    let (statements, ingest_statements) =
        (statements("guichet_db_statements_total"), statements("guichet_ingest_statements_total"));
    let pg = pg.map(PgSampler::finish);
    let secs = (done - t0).as_secs_f64();
    let steady = (done - first.unwrap_or(t0)).as_secs_f64();
    metric("ingest_seconds", secs, "s (from `guichet run` start to the last commit)");
    metric("ingest_mails_per_s", n as f64 / secs, "mails/s");
    metric("ingest_mb_per_s", mb(bytes) / secs, "MB/s");
    metric("ingest_mails_per_s_after_first_commit", (n as f64 - 1.0) / steady.max(1e-9), "mails/s");
    metric("ingest_guichet_cpu", cpu_backlog / secs * 100.0, "% of one core (guichet processes)");
    metric("ingest_guichet_cpu_ms_per_mail", cpu_backlog * 1000.0 / n as f64, "ms of CPU per mail (guichet processes)");
    if let Some(cpu) = dovecot_cpu {
        metric(
            "ingest_dovecot_cpu_ms_per_mail",
            cpu * 1000.0 / n as f64,
            "ms of CPU per mail (the mail stack's Dovecot)",
        );
    }
    if let Some(statements) = ingest_statements.filter(|_| !observe.metrics.is_empty()) {
        metric(
            "ingest_statements_per_mail",
            statements / n as f64,
            "database statements per mail (the batches' transactions, BEGIN and COMMIT included)",
        );
    }
    if let Some(statements) = statements.filter(|_| !observe.metrics.is_empty()) {
        metric(
            "ingest_all_statements_per_mail",
            statements / n as f64,
            "database statements per mail (every statement of the daemons: start-up, IMAP loop, sender)",
        );
    }
    if daemons.len() > 1 {
        for (k, cpu) in cpus.iter().enumerate() {
            metric(&format!("ingest_daemon{}_cpu", k + 1), cpu / secs * 100.0, "% of one core");
        }
    }
    if let Some(pg) = pg {
        let samples = pg.samples.max(1) as f64;
        let (cpu, switches) = pg.backends.values().fold((0.0, 0), |(c, s), (c2, s2)| (c + c2, s + s2));
        metric(
            "ingest_pg_backends_cpu_ms_per_mail",
            cpu * 1000.0 / n as f64,
            &format!("ms of CPU per mail (the daemons' {} PostgreSQL backends)", pg.backends.len()),
        );
        metric(
            "ingest_pg_backends_wakeups_per_mail",
            switches as f64 / n as f64,
            "voluntary context switches of those backends per mail (≈ statements waited for)",
        );
        metric(
            "ingest_pg_lock_wait_share",
            pg.waiting as f64 / samples * 100.0,
            &format!("% of {} samples (every 20 ms) with a daemon's backend waiting on a lock", pg.samples),
        );
        metric("ingest_pg_lock_waiters_mean", pg.waiters as f64 / samples, "backends waiting on a lock, mean");
    }
    metric("load_average_1min", load_average(), "(other processes compete for the 2 cores)");
    let hwm: u64 = daemons.iter().map(|x| x.memory().1).max().unwrap_or(0);
    metric("ingest_peak_rss", hwm as f64 / 1024.0, "MiB (VmHWM after the backlog; the largest daemon)");
    let tickets = count(&mut db, "SELECT count(*) AS n FROM tickets")?;
    let quarantined = count(&mut db, "SELECT count(*) AS n FROM raw_mails WHERE state = 'quarantined'")?;
    let pending = count(&mut db, "SELECT count(*) AS n FROM outbox")?;
    metric("ingest_tickets", tickets as f64, "tickets");
    metric("ingest_quarantined", quarantined as f64, "mails");
    metric("ingest_notifications_queued", pending as f64, "notifications");
    // Which daemon read which mailbox: its lease holder is `host-boot-pid-random`.
    let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
    for (mailbox, mails, holder) in per_mailbox(&mut db)? {
        let who = holder
            .as_deref()
            .and_then(|h| h.rsplit('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(|p| pids.iter().position(|x| *x == p))
            .map_or_else(|| "no daemon".to_string(), |k| format!("daemon {}", k + 1));
        eprintln!("bench: mailbox {mailbox}: {mails} mails; lease held by {who} after the drain");
    }

    // The memory the daemons keep once idle (their sender may still be at work).
    if !observe.settle.is_zero() {
        std::thread::sleep(observe.settle.saturating_sub(done.elapsed()));
        let statuses: Vec<String> = daemons
            .iter()
            .map(|x| std::fs::read_to_string(format!("/proc/{}/status", x.pid())).unwrap_or_default())
            .collect();
        let field = |name: &str| -> f64 {
            statuses
                .iter()
                .map(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                        .unwrap_or(0)
                })
                .max()
                .unwrap_or(0) as f64
                / 1024.0
        };
        let after = observe.settle.as_secs();
        metric("steady_rss", field("VmRSS:"), &format!("MiB (VmRSS {after} s after the drain; the largest daemon)"));
        metric("steady_rss_anon", field("RssAnon:"), "MiB (RssAnon then: heap and buffers)");
        metric("steady_rss_file", field("RssFile:"), "MiB (RssFile then: binary + mmapped SQLite pages)");
    }

    // 3. A steady stream while the daemons run: latency from APPEND to the committed row.
    if n_stream > 0 {
        // Let the daemons go idle (moves finished, IDLE armed) before the stream starts.
        std::thread::sleep(Duration::from_secs(2));
        let mails: Vec<(usize, Vec<u8>)> = (n..plan.len()).map(|i| (i, plan.render(i))).collect();
        let stream_bytes: usize = mails.iter().map(|(_, m)| m.len()).sum();
        let keys: HashMap<String, usize> =
            (n..plan.len()).map(|i| (format!("mid:{}", plan.message_id(i)), i)).collect();
        let start_id = count(&mut db, "SELECT coalesce(max(id), 0) AS n FROM raw_mails")?;
        let seen: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (seen, stop, keys, url) = (seen.clone(), stop.clone(), keys.clone(), url.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = open_db(&url, Duration::from_secs(10))?;
                let mut last = start_id;
                while !stop.load(Ordering::Relaxed) {
                    let rows = raw_mails_after(&mut c, last)?;
                    let now = Instant::now();
                    let mut s = seen.lock().unwrap();
                    for (id, key) in rows {
                        last = last.max(id);
                        if let Some(i) = keys.get(&key) {
                            s.entry(*i).or_insert(now);
                        }
                    }
                    drop(s);
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(())
            })
        };
        let cpu0: f64 = daemons.iter().map(Daemon::cpu_seconds).sum();
        // Two connections at least, one per mailbox user at least: mail k goes to connection
        // k mod conns, which is logged in as user (k mod conns) mod M.
        let conns = 2usize.max(users.len());
        let t_start = Instant::now() + Duration::from_millis(100);
        let per_mail = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut by_conn: Vec<Vec<ToAppend>> = vec![Vec::new(); conns];
        for (k, (i, data)) in mails.into_iter().enumerate() {
            by_conn[k % conns].push((i, data, Some(t_start + per_mail * k as u32)));
        }
        let appended: Vec<(usize, Appended)> = std::thread::scope(|s| -> anyhow::Result<Vec<_>> {
            let handles: Vec<_> = by_conn
                .into_iter()
                .enumerate()
                .map(|(c, list)| {
                    let total = list.len();
                    let a = a.as_user(&users[c % users.len()]);
                    s.spawn(move || append_connection(&a, list.into_iter(), total, 1))
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))??);
            }
            Ok(all)
        })?;
        let append_secs = (Instant::now() - t_start).as_secs_f64();
        // Until every mail is committed, or 60 s without a new commit (a slow database drains
        // what the stream left behind for a while: its latencies count, they are not cut off).
        let (mut committed, mut progress_at) = (0, Instant::now());
        loop {
            let now_seen = seen.lock().unwrap().len();
            if now_seen > committed {
                (committed, progress_at) = (now_seen, Instant::now());
            }
            if now_seen >= n_stream
                || progress_at.elapsed() > Duration::from_secs(60)
                || !daemons.iter_mut().all(Daemon::alive)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        poller.join().map_err(|_| anyhow::anyhow!("poller panicked"))??;
        let cpu_stream = daemons.iter().map(Daemon::cpu_seconds).sum::<f64>() - cpu0;
        let seen = seen.lock().unwrap();
        let mut lat: Vec<f64> = appended
            .iter()
            .filter_map(|(i, ap)| seen.get(i).map(|t| t.saturating_duration_since(ap.ok).as_secs_f64() * 1000.0))
            .collect();
        let mut lat_sent: Vec<f64> = appended
            .iter()
            .filter_map(|(i, ap)| seen.get(i).map(|t| t.saturating_duration_since(ap.sent).as_secs_f64() * 1000.0))
            .collect();
        lat.sort_by(f64::total_cmp);
        lat_sent.sort_by(f64::total_cmp);
        metric("stream_mails", n_stream as f64, "mails");
        metric("stream_rate_target", f64::from(rate), "mails/s");
        metric("stream_rate_achieved", n_stream as f64 / append_secs, "mails/s (APPEND OKs)");
        metric("stream_mb_per_s", mb(stream_bytes as u64) / append_secs, "MB/s");
        metric("stream_committed", seen.len() as f64, "mails");
        metric("stream_latency_p50", percentile(&lat, 0.50), "ms (APPEND OK → committed row)");
        metric("stream_latency_p90", percentile(&lat, 0.90), "ms");
        metric("stream_latency_p99", percentile(&lat, 0.99), "ms");
        metric("stream_latency_max", percentile(&lat, 1.0), "ms");
        metric("stream_latency_from_send_p99", percentile(&lat_sent, 0.99), "ms (APPEND written → committed row)");
        metric("stream_guichet_cpu", cpu_stream / append_secs * 100.0, "% of one core (guichet processes)");
        metric("stream_guichet_cpu_ms_per_mail", cpu_stream * 1000.0 / n_stream as f64, "ms");
        if seen.len() < n_stream {
            eprintln!("bench: {} stream mails not committed (60 s without progress)", n_stream - seen.len());
        }
    }
    let hwm: u64 = daemons.iter().map(|x| x.memory().1).max().unwrap_or(0);
    let peaks: Vec<RssPeaks> = samplers.into_iter().map(RssSampler::finish).collect();
    let peak_of = |f: fn(&RssPeaks) -> u64| peaks.iter().map(f).max().unwrap_or(0) as f64 / 1024.0;
    let several = if daemons.len() > 1 { "; the largest daemon" } else { "" };
    metric("peak_rss", hwm as f64 / 1024.0, &format!("MiB (VmHWM of guichet run at the end{several})"));
    metric(
        "peak_rss_anon",
        peak_of(|p| p.anon),
        &format!("MiB (max RssAnon sampled every 25 ms: heap and buffers{several})"),
    );
    metric("peak_rss_file", peak_of(|p| p.file), &format!("MiB (max RssFile: binary + mmapped SQLite pages{several})"));
    for (k, daemon) in daemons.into_iter().enumerate() {
        if !daemon.stop() {
            eprintln!("bench: guichet run (daemon {}) did not exit cleanly on SIGTERM", k + 1);
        }
    }
    Ok(())
}

/// On PostgreSQL, every 20 ms: which backends of the database serve the daemons (the driver's
/// own connections are named `guichet-bench`), how many of them wait on a lock (row locks of
/// concurrent transactions), and each one's CPU time and voluntary context switches from /proc
/// (a backend sleeps once per statement it waits for, so switches ≈ round trips). None on SQLite.
struct PgSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<PgSamples>,
}

#[derive(Default)]
struct PgSamples {
    samples: usize,
    /// Samples in which at least one backend waited on a lock.
    waiting: usize,
    /// Sum over samples of the backends waiting on a lock.
    waiters: i64,
    /// Backend pid → (CPU seconds, voluntary context switches), last seen.
    backends: HashMap<i64, (f64, u64)>,
}

#[derive(QueryableByName)]
struct BackendRow {
    #[diesel(sql_type = BigInt)]
    pid: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    waiting: bool,
}

/// (CPU seconds, voluntary context switches) of a process, from /proc.
fn proc_cpu_and_switches(pid: i64) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let switches = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?.trim().parse().ok()?;
    Some((cpu, switches))
}

impl PgSampler {
    fn start(url: &str) -> anyhow::Result<Option<PgSampler>> {
        if !url.starts_with("postgres") {
            return Ok(None);
        }
        let mut c = connect_db(url)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let sql = "SELECT pid::bigint AS pid, coalesce(wait_event_type = 'Lock', false) AS waiting \
                       FROM pg_stat_activity WHERE datname = current_database() \
                       AND backend_type = 'client backend' AND application_name <> 'guichet-bench'";
            let mut out = PgSamples::default();
            while !s.load(Ordering::Relaxed) {
                let rows: QueryResult<Vec<BackendRow>> = on_backend!(&mut c, c => diesel::sql_query(sql).load(c));
                if let Ok(rows) = rows {
                    out.samples += 1;
                    let w = rows.iter().filter(|r| r.waiting).count() as i64;
                    out.waiting += usize::from(w > 0);
                    out.waiters += w;
                    for r in rows {
                        if let Some(v) = proc_cpu_and_switches(r.pid) {
                            out.backends.insert(r.pid, v);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        });
        Ok(Some(PgSampler { stop, handle }))
    }

    fn finish(self) -> PgSamples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Dovecot alone: the whole INBOX fetched the way the daemon fetches it (100 UIDs per command).
fn dovecot_baseline(a: &ImapArgs) -> anyhow::Result<(usize, u64, f64)> {
    use futures::TryStreamExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect((a.imap_host.as_str(), a.imap_port)).await?;
        tcp.set_nodelay(true)?;
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.context("greeting")?;
        let mut session = client.login(&a.user, &a.password).await.map_err(|(e, _)| anyhow::anyhow!("login: {e}"))?;
        session.select(&a.folder).await?;
        let t = Instant::now();
        let mut uids: Vec<u32> = session.uid_search("ALL").await?.into_iter().collect();
        uids.sort_unstable();
        let (mut count, mut bytes) = (0usize, 0u64);
        for chunk in uids.chunks(100) {
            let set = chunk.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let fetches: Vec<_> = session.uid_fetch(set, "(UID BODY.PEEK[])").await?.try_collect().await?;
            for f in &fetches {
                if let Some(b) = f.body() {
                    count += 1;
                    bytes += b.len() as u64;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let _ = session.logout().await;
        Ok((count, bytes, secs))
    })
}

/// The mix parsed, then parsed + committed through the library in batches of 100 (no IMAP).
fn profile_ingest(mix: &MixArgs, config: &Path, page_size: Option<u32>) -> anyhow::Result<()> {
    use guichet::desk::actions::Mailing;
    let plan = Plan::new(mix, 0);
    let t = Instant::now();
    let mails: Vec<Vec<u8>> = (0..plan.len()).map(|i| plan.render(i)).collect();
    let bytes: u64 = mails.iter().map(|m| m.len() as u64).sum();
    metric("profile_generate_seconds", t.elapsed().as_secs_f64(), "s (not part of ingest)");
    metric("profile_mails", mails.len() as f64, "mails");
    metric("profile_mb", mb(bytes), "MB");

    let t = Instant::now();
    for m in &mails {
        let _ = guichet::parse::parse(m);
    }
    let parse = t.elapsed().as_secs_f64();
    metric("profile_parse_mails_per_s", mails.len() as f64 / parse, "mails/s (guichet::parse::parse alone)");
    metric("profile_parse_mb_per_s", mb(bytes) / parse, "MB/s");

    let settings = guichet::config::Settings::load(Some(config))?;
    if let (Some(size), Some(path)) = (page_size, settings.database.url.strip_prefix("sqlite://")) {
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute(&format!("PRAGMA page_size = {size}; PRAGMA journal_mode = WAL;"))?;
    }
    let app = guichet::app::App::open(settings)?;
    let t = Instant::now();
    for batch in mails.chunks(100) {
        app.ingest_batch(batch, "support", Mailing::Send)?;
    }
    let full = t.elapsed().as_secs_f64();
    metric("profile_ingest_mails_per_s", mails.len() as f64 / full, "mails/s (App::ingest_batch, 100 per transaction)");
    metric("profile_ingest_mb_per_s", mb(bytes) / full, "MB/s");
    metric("profile_parse_share", parse / full * 100.0, "% of ingest time spent parsing");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Outgoing mail

/// Seeds at least `target` more pending notifications: new tickets from distinct customers of
/// `domain`, ingested through the library (each queues an acknowledgement, rendered and composed
/// by the real templates). Returns the number pending afterwards.
fn seed_outbox(config: &Path, db: &str, target: usize, domain: &str, offset: usize) -> anyhow::Result<usize> {
    use guichet::desk::actions::Mailing;
    let settings = guichet::config::Settings::load(Some(config))?;
    let app = guichet::app::App::open(settings)?;
    let mut c = open_db(db, Duration::from_secs(10))?;
    let pending0 = count(&mut c, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")? as usize;
    let mut k = offset;
    // Notifications queued per new ticket (an acknowledgement, a staff alert…), learnt as we go.
    let mut per_mail = 1.0f64;
    loop {
        let pending = count(&mut c, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")? as usize;
        if k > offset {
            per_mail = ((pending - pending0) as f64 / (k - offset) as f64).max(0.1);
        }
        if pending >= pending0 + target {
            return Ok(pending);
        }
        let missing = ((pending0 + target - pending) as f64 / per_mail).ceil() as usize;
        let batch: Vec<Vec<u8>> = (0..missing.clamp(1, if k == offset { 20 } else { 200 }))
            .map(|j| {
                let i = k + j;
                format!(
                    "From: Client {i} <client{i}@{domain}>\r\nTo: Support <support@example.com>\r\nSubject: Demande {i} : imprimante bloquée\r\nMessage-ID: <seed-{i}-{:08x}@{domain}>\r\nDate: Mon, 30 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBonjour,\r\n\r\nL'imprimante du deuxième étage est bloquée depuis ce matin.\r\nPourriez-vous regarder ?\r\n\r\nMerci,\r\nClient {i}\r\n",
                    rand::random::<u32>()
                )
                .into_bytes()
            })
            .collect();
        k += batch.len();
        app.ingest_batch(&batch, "seed", Mailing::Send)?;
    }
}

/// Median and max time of the sender's claim (`outbox::claim_due`, 64 rows) and of the
/// `status` query, each in a transaction rolled back so that nothing is claimed.
fn queue_query_times(config: &Path) -> anyhow::Result<(f64, f64, f64)> {
    let settings = guichet::config::Settings::load(Some(config))?;
    let store = guichet::store::Store::open(&settings.database.url, 2)?;
    let mut conn = store.conn()?;
    let mut claims = Vec::new();
    let mut claimed = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let r: anyhow::Result<()> = guichet::store::write_tx(&mut conn, |c| {
            claimed = guichet::store::outbox::claim_due(c, guichet::store::now(), 64, 120)?.len();
            bail!("rolled back on purpose")
        });
        let _ = r;
        claims.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut statuses = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        guichet::store::outbox::status(&mut conn, guichet::store::now())?;
        statuses.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    claims.sort_by(f64::total_cmp);
    statuses.sort_by(f64::total_cmp);
    eprintln!("bench: each claim took {claimed} rows");
    Ok((percentile(&claims, 0.5), percentile(&claims, 1.0), percentile(&statuses, 0.5)))
}

/// Runs the daemon until every notification is sent or failed; prints the metrics with `prefix`.
fn drain(d: &DaemonArgs, prefix: &str) -> anyhow::Result<()> {
    let mut db = open_db(&d.url(), Duration::from_secs(10))?;
    let before = outbox_states(&mut db)?;
    let pending = *before.get("pending").unwrap_or(&0);
    let base = before.get("sent").unwrap_or(&0) + before.get("failed").unwrap_or(&0);
    let t0 = Instant::now();
    let mut daemon = Daemon::start(d, &d.config, prefix, &d.pidfile)?;
    let sampler = RssSampler::start(daemon.pid());
    let deadline = t0 + Duration::from_secs(d.timeout);
    let mut first: Option<Instant> = None;
    let (done, states) = loop {
        let s = outbox_states(&mut db)?;
        let finished = s.get("sent").unwrap_or(&0) + s.get("failed").unwrap_or(&0) - base;
        if finished > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if finished >= pending {
            break (Instant::now(), s);
        }
        if !daemon.alive() {
            bail!("guichet run exited with {finished} of {pending} notifications done");
        }
        if Instant::now() > deadline {
            bail!("timed out with {finished} of {pending} notifications done");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = daemon.cpu_seconds();
    let (_, hwm) = daemon.memory();
    let peak = sampler.finish();
    let hwm = hwm.max(peak.rss);
    let secs = (done - t0).as_secs_f64();
    let failed = states.get("failed").unwrap_or(&0) - before.get("failed").unwrap_or(&0);
    let bytes = mean_mail_bytes(&mut db)?;
    metric(&format!("{prefix}_notifications"), pending as f64, "notifications");
    metric(&format!("{prefix}_mean_mail_kb"), bytes / 1000.0, "kB (mean of the first 200 mails, composed)");
    metric(&format!("{prefix}_seconds"), secs, "s (from `guichet run` start to the last one sent)");
    metric(&format!("{prefix}_per_s"), pending as f64 / secs, "notifications/s");
    metric(&format!("{prefix}_load_average_1min"), load_average(), "");
    metric(
        &format!("{prefix}_per_s_after_first"),
        (pending as f64 - 1.0) / (done - first.unwrap_or(t0)).as_secs_f64().max(1e-9),
        "notifications/s",
    );
    metric(&format!("{prefix}_failed"), failed as f64, "notifications");
    metric(&format!("{prefix}_guichet_cpu"), cpu / secs * 100.0, "% of one core (guichet process)");
    metric(&format!("{prefix}_guichet_cpu_ms_per_notification"), cpu * 1000.0 / pending.max(1) as f64, "ms");
    metric(&format!("{prefix}_peak_rss"), hwm as f64 / 1024.0, "MiB (VmHWM)");
    metric(&format!("{prefix}_peak_rss_anon"), peak.anon as f64 / 1024.0, "MiB (max RssAnon)");
    if !daemon.stop() {
        eprintln!("bench: guichet run did not exit cleanly on SIGTERM");
    }
    Ok(())
}

fn sender_bench(d: &DaemonArgs, n: usize, queue: usize, domain: &str, sink: Option<&Path>) -> anyhow::Result<()> {
    // `migrate` first, so that the database exists before the seeding opens it.
    let status = Command::new(&d.guichet).arg("-c").arg(&d.config).arg("migrate").stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("guichet migrate failed");
    }
    let t = Instant::now();
    let pending = seed_outbox(&d.config, &d.url(), n, domain, 0)?;
    metric("seed_seconds", t.elapsed().as_secs_f64(), "s (not measured: tickets ingested through the library)");
    eprintln!("bench: {pending} notifications pending");
    drain(d, "send")?;

    if queue > 0 {
        let t = Instant::now();
        let pending = seed_outbox(&d.config, &d.url(), queue, domain, 1_000_000)?;
        metric("seed_queue_seconds", t.elapsed().as_secs_f64(), "s (not measured)");
        let (claim_p50, claim_max, status_p50) = queue_query_times(&d.config)?;
        metric("queue_pending", pending as f64, "notifications");
        metric("queue_claim_ms_p50", claim_p50, "ms (claim_due of 64 rows, then rolled back)");
        metric("queue_claim_ms_max", claim_max, "ms");
        metric("queue_status_ms_p50", status_p50, "ms (outbox::status, what `guichet status` runs)");
        drain(d, "queue")?;
        let (claim_p50, _, status_p50) = queue_query_times(&d.config)?;
        metric("queue_empty_claim_ms_p50", claim_p50, "ms (after the drain: nothing due)");
        metric("queue_empty_status_ms_p50", status_p50, "ms");
    }

    if let Some(sink) = sink {
        seed_outbox(&d.config, &d.url(), n, domain, 2_000_000)?;
        let to_sink = DaemonArgs { config: sink.to_path_buf(), ..d.clone() };
        drain(&to_sink, "sink")?;
    }
    Ok(())
}
