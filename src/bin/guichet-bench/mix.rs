//! The mail mix: realistic French and English mails, replies and attachments, generated from a seed.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Text,
    Alternative,
    Attachment,
    Reply { target: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Fr,
    En,
}

#[derive(Clone)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    pub(crate) lang: Lang,
    pub(crate) customer: usize,
    pub(crate) subject: String,
    /// Approximate size of the body text (bytes).
    pub(crate) body_size: usize,
    /// Attachment size before base64 (bytes).
    pub(crate) attachment: usize,
    /// The ticket this mail should open, counting in APPEND order (replies: their target's).
    pub(crate) ticket_guess: usize,
}

/// A deterministic mix: mail `i` is always the same bytes for a given seed. The first `n_fill`
/// mails form the backlog, the rest the steady stream (whose replies answer backlog mails).
pub(crate) struct Plan {
    pub(crate) seed: u64,
    pub(crate) run: String,
    pub(crate) n_fill: usize,
    pub(crate) metas: Vec<Meta>,
}

pub(crate) const FIRST_NAMES: &[&str] = &[
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
pub(crate) const LAST_NAMES: &[&str] = &[
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
pub(crate) const DOMAINS: &[&str] =
    &["customer.example", "cisa.example", "other.example", "example.org", "example.net"];

pub(crate) const FR_SUBJECTS: &[&str] = &[
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
pub(crate) const EN_SUBJECTS: &[&str] = &[
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
pub(crate) const FR_SENTENCES: &[&str] = &[
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
pub(crate) const EN_SENTENCES: &[&str] = &[
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
pub(crate) const ATTACHMENTS: &[(&str, &str)] = &[
    ("capture-ecran.png", "image/png"),
    ("facture-2026-11.pdf", "application/pdf"),
    ("journal-erreurs.zip", "application/zip"),
    ("photo_imprimante.jpg", "image/jpeg"),
    ("export-commandes.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("Compte rendu réunion.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
];
pub(crate) const AGENTS: &[&str] =
    &["Mozilla Thunderbird 128.5.0", "Microsoft Outlook 16.0", "Apple Mail (2.3776.700.51)", "Roundcube Webmail/1.6.9"];

impl Plan {
    /// `n_fill` backlog mails, then `n_stream` stream mails.
    pub(crate) fn new(mix: &MixArgs, n_stream: usize) -> Plan {
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

    pub(crate) fn len(&self) -> usize {
        self.metas.len()
    }

    pub(crate) fn message_id(&self, i: usize) -> String {
        format!("bench-{}-{i}@mail.{}", self.run, self.customer_domain(self.metas[i].customer))
    }

    pub(crate) fn customer_domain(&self, c: usize) -> &'static str {
        DOMAINS[c % DOMAINS.len()]
    }

    pub(crate) fn customer(&self, c: usize) -> (String, String) {
        let first = FIRST_NAMES[c % FIRST_NAMES.len()];
        let last = LAST_NAMES[(c / FIRST_NAMES.len()) % LAST_NAMES.len()];
        let local = format!("{}.{}{}", ascii_fold(first), ascii_fold(last), c / 400);
        (format!("{first} {last}"), format!("{local}@{}", self.customer_domain(c)))
    }

    /// The raw bytes of mail `i` (CRLF line ends).
    pub(crate) fn render(&self, i: usize) -> Vec<u8> {
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

pub(crate) fn text_part_headers(rng: &mut StdRng) -> String {
    if rng.random_range(0..100) < 60 {
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n"
            .to_string()
    } else {
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n".to_string()
    }
}

pub(crate) fn encode_text(text: &str, headers: &str) -> String {
    if headers.contains("quoted-printable") { quoted_printable(text) } else { text.replace('\n', "\r\n") }
}

/// Paragraphs of prose of about `size` bytes, with a greeting and a signature.
pub(crate) fn prose(rng: &mut StdRng, lang: Lang, size: usize, name: &str) -> String {
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

pub(crate) fn html_of(text: &str) -> String {
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
pub(crate) fn quoted_printable(text: &str) -> String {
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
pub(crate) fn encode_word(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
}

pub(crate) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

pub(crate) fn ascii_fold(s: &str) -> String {
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
