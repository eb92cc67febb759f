//! One table per language. Sources: the formats Gmail, Outlook (desktop, web, mobile), Apple Mail
//! and iOS Mail, Thunderbird, Yahoo, Samsung Email, GMX/Web.de, Zimbra (Free), Open-Xchange
//! (La Poste) and Orange write in each locale. Keep the rows in the order of `Language`'s fields.

use super::Language;

/// The languages, most common first (the order only matters for readability of reports).
pub static LANGUAGES: &[Language] = &[EN, FR, DE, ES, IT, PT, NL, PL, SV, DA, NB, FI, RU, UK, JA, KO, ZH, VI, TR, CS];

const EN: Language = Language {
    code: "en",
    // "On Mon, Jun 3, 2024 at 10:12 AM Marie <m@x> wrote" (Gmail, Apple, Thunderbird, Yahoo, OX).
    attributions: &[r"on\s.*\d.*\swrote"],
    from: &["From"],
    date: &["Sent", "Date"],
    to: &["To", "Cc"],
    subject: &["Subject"],
    separators: &["Original Message", "Forwarded Message"],
    forward_intros: &["Begin forwarded message"],
    signatures: &[
        "Sent from my",
        "Sent from Outlook",
        "Sent from Mail for",
        "Sent from Yahoo Mail",
        "Sent from Samsung",
        "Sent from the Orange",
        "Get Outlook for",
    ],
    reply_prefixes: &["Re"],
    forward_prefixes: &["Fwd", "Fw"],
};

const FR: Language = Language {
    code: "fr",
    attributions: &[r"le\s.*\d.*\sa\s+écrit"],
    from: &["De"],
    date: &["Envoyé", "Envoyé le", "Date"],
    to: &["À", "A", "Pour", "Cc", "Copie à"],
    subject: &["Objet", "Sujet"],
    separators: &[
        "Message d'origine",
        "Message d’origine",
        "Message original",
        "Mail original",
        "Message transféré",
        "Mail transféré",
    ],
    forward_intros: &["Début du message réexpédié", "Début du message transféré"],
    signatures: &[
        "Envoyé de mon",
        "Envoyé depuis mon",
        "Envoyé depuis Outlook",
        "Envoyé depuis Yahoo Mail",
        "Envoyé de Yahoo Mail",
        "Envoyé à partir de",
        "Envoyé avec l'application",
        "Obtenir Outlook pour",
        "Télécharger Outlook pour",
        "Provenance : Courrier pour",
    ],
    reply_prefixes: &["Re", "Réf", "Ref", "Rép"],
    forward_prefixes: &["TR", "Fwd"],
};

const DE: Language = Language {
    code: "de",
    // Gmail, Apple and Thunderbird put the verb in the middle; Open-Xchange (Web.de) names first.
    attributions: &[r"am\s.*\d.*\s(?:schrieb(?:\s.*)?|hat\s.*\sgeschrieben)", r".*\shat\s+am\s.*\d.*\sgeschrieben"],
    from: &["Von"],
    date: &["Gesendet", "Datum"],
    to: &["An", "Cc", "Kopie"],
    subject: &["Betreff"],
    separators: &["Ursprüngliche Nachricht", "Weitergeleitete Nachricht", "Ursprüngliche Mail", "Weitergeleitete Mail"],
    forward_intros: &["Anfang der weitergeleiteten Nachricht", "Anfang der weitergeleiteten E-Mail"],
    signatures: &["Von meinem", "Gesendet von", "Gesendet mit", "Outlook für"],
    reply_prefixes: &["AW", "Antw"],
    forward_prefixes: &["WG", "Wtr"],
};

const ES: Language = Language {
    code: "es",
    attributions: &[r"el\s.*\d.*\sescribió"],
    from: &["De"],
    date: &["Enviado", "Enviado el", "Fecha"],
    to: &["Para", "CC"],
    subject: &["Asunto"],
    separators: &["Mensaje original", "Mensaje reenviado"],
    forward_intros: &["Inicio del mensaje reenviado"],
    signatures: &["Enviado desde mi", "Enviado desde Outlook", "Enviado desde Yahoo", "Obtener Outlook para"],
    reply_prefixes: &["RE"],
    forward_prefixes: &["RV"],
};

const IT: Language = Language {
    code: "it",
    attributions: &[r"il\s.*\d.*\sha\s+scritto"],
    from: &["Da", "Mittente"],
    date: &["Inviato", "Data"],
    to: &["A", "Cc"],
    subject: &["Oggetto"],
    separators: &["Messaggio originale", "Messaggio inoltrato"],
    forward_intros: &["Inizio messaggio inoltrato"],
    signatures: &["Inviato dal mio", "Inviato da", "Scarica Outlook per", "Ottieni Outlook per"],
    reply_prefixes: &["R", "RIF"],
    forward_prefixes: &["I", "Inoltra"],
};

const PT: Language = Language {
    code: "pt",
    attributions: &[r"em\s.*\d.*\sescreveu"],
    from: &["De"],
    date: &["Enviado", "Enviada em", "Data"],
    to: &["Para", "Cc"],
    subject: &["Assunto"],
    separators: &["Mensagem original", "Mensagem encaminhada"],
    forward_intros: &["Início da mensagem reencaminhada", "Início da mensagem encaminhada"],
    signatures: &["Enviado do meu", "Enviado do Outlook", "Enviado de meu", "Obter o Outlook para"],
    reply_prefixes: &["RES"],
    forward_prefixes: &["ENC", "Reenc"],
};

const NL: Language = Language {
    code: "nl",
    attributions: &[r"op\s.*\d.*\s(?:schreef(?:\s.*)?|het\s+volgende\s+geschreven)"],
    from: &["Van"],
    date: &["Verzonden", "Datum"],
    to: &["Aan", "CC"],
    subject: &["Onderwerp"],
    separators: &["Oorspronkelijk bericht", "Doorgestuurd bericht"],
    forward_intros: &["Begin doorgestuurd bericht"],
    signatures: &["Verzonden vanaf mijn", "Verstuurd vanaf mijn", "Verzonden met", "Outlook voor"],
    reply_prefixes: &["Antw"],
    forward_prefixes: &["Doorst"],
};

const PL: Language = Language {
    code: "pl",
    attributions: &[
        r"w\s+dniu\s.*\d.*\s(?:pisze|napisał(?:\(-?a\)|a)?)",
        r".*\d{1,2}[:.]\d{2}.*\snapisał(?:\(-?a\)|a)?",
        r"wiadomość\s+napisana\s+przez\s.*\d.*",
    ],
    from: &["Od"],
    date: &["Wysłano", "Data"],
    to: &["Do", "DW"],
    subject: &["Temat"],
    separators: &["Oryginalna wiadomość", "Wiadomość przekazana dalej", "Przekazana wiadomość"],
    forward_intros: &["Początek przekazywanej wiadomości"],
    signatures: &["Wysłane z", "Wysłano z", "Pobierz aplikację Outlook"],
    reply_prefixes: &["Odp"],
    forward_prefixes: &["PD"],
};

const SV: Language = Language {
    code: "sv",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\sskrev(?:\s.*)?"],
    from: &["Från"],
    date: &["Skickat", "Datum"],
    to: &["Till", "Kopia"],
    subject: &["Ämne"],
    separators: &["Ursprungligt meddelande", "Vidarebefordrat meddelande"],
    forward_intros: &["Vidarebefordrat mejl"],
    signatures: &["Skickat från", "Hämta Outlook för"],
    reply_prefixes: &["SV"],
    forward_prefixes: &["VB"],
};

const DA: Language = Language {
    code: "da",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\sskrev(?:\s.*)?"],
    from: &["Fra"],
    date: &["Sendt", "Dato"],
    to: &["Til", "Cc"],
    subject: &["Emne"],
    separators: &["Oprindelig meddelelse", "Videresendt besked", "Videresendt meddelelse"],
    forward_intros: &["Start på videresendt besked"],
    signatures: &["Sendt fra", "Hent Outlook til"],
    reply_prefixes: &["SV"],
    forward_prefixes: &["VS", "VIDERESEND"],
};

const NB: Language = Language {
    code: "nb",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\sskrev(?:\s.*)?"],
    from: &["Fra"],
    date: &["Sendt", "Dato"],
    to: &["Til", "Kopi"],
    subject: &["Emne"],
    separators: &["Opprinnelig melding", "Videresendt melding"],
    forward_intros: &["Begynnelse på videresendt melding"],
    signatures: &["Sendt fra", "Få Outlook for"],
    reply_prefixes: &["SV"],
    forward_prefixes: &["VS"],
};

const FI: Language = Language {
    code: "fi",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\skirjoitti"],
    from: &["Lähettäjä"],
    date: &["Lähetetty", "Päivämäärä"],
    to: &["Vastaanottaja", "Kopio"],
    subject: &["Aihe"],
    separators: &["Alkuperäinen viesti", "Välitetty viesti"],
    forward_intros: &["Välitetty viesti alkaa"],
    signatures: &["Lähetetty iPhonesta", "Lähetetty Android", "Lähetetty Samsung", "Hanki Outlook"],
    // "VS" is also the Danish and Norwegian forward prefix: both lists keep it.
    reply_prefixes: &["VS"],
    forward_prefixes: &["VL"],
};

const RU: Language = Language {
    code: "ru",
    attributions: &[
        r".*\d{1,2}[:.]\d{2}.*\s(?:написал(?:\(-?а\)|а)?|пишет)",
        // Gmail names no verb: "пн, 3 июн. 2024 г. в 10:12, Marie <m@x>".
        r"(?:пн|вт|ср|чт|пт|сб|вс),\s+\d.*\d{4}\s*г\..*\d{1,2}:\d{2},\s.+",
    ],
    from: &["От"],
    date: &["Отправлено", "Дата"],
    to: &["Кому", "Копия"],
    subject: &["Тема"],
    separators: &["Исходное сообщение", "Пересылаемое сообщение", "Перенаправленное сообщение"],
    forward_intros: &["Начало переадресованного сообщения"],
    signatures: &["Отправлено с", "Отправлено из", "Получить Outlook для"],
    reply_prefixes: &["Ответ", "Отв"],
    forward_prefixes: &["Пересл", "Переслать"],
};

const UK: Language = Language {
    code: "uk",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\s(?:пише|написав(?:\(-?ла\)|ла)?|написала)"],
    from: &["Від"],
    date: &["Надіслано", "Дата"],
    to: &["Кому", "Копія"],
    subject: &["Тема"],
    separators: &["Оригінальне повідомлення", "Пересланий лист", "Переслане повідомлення"],
    forward_intros: &["Початок пересланого листа"],
    signatures: &["Надіслано з"],
    reply_prefixes: &["Відп"],
    forward_prefixes: &["Пересл"],
};

const JA: Language = Language {
    code: "ja",
    attributions: &[
        // Gmail names no verb: "2024年6月3日(月) 10:12 Marie <m@x>".
        r"\d{4}年\d{1,2}月\d{1,2}日.*\d{1,2}:\d{2}\s.+",
        // Apple Mail: "2024/06/03 10:12、Marie <m@x>のメール".
        r".*\d{1,2}[:.]\d{2}.*のメール",
    ],
    from: &["差出人"],
    date: &["送信日時", "日付"],
    to: &["宛先", "CC"],
    subject: &["件名"],
    separators: &["元のメッセージ", "転送されたメッセージ", "転送メッセージ"],
    forward_intros: &["転送されたメッセージ"],
    signatures: &["iPhoneから送信", "Galaxy から送信", "Android の Outlook", "Outlook for"],
    reply_prefixes: &["返信"],
    forward_prefixes: &["転送"],
};

const KO: Language = Language {
    code: "ko",
    // Hangul runs into the verb without a word boundary: "<m@x>님이 작성", "이(가) 쓴 글".
    attributions: &[r".*\d{1,2}[:.]\d{2}.*(?:작성|쓴\s*글)"],
    from: &["보낸 사람", "보낸사람"],
    date: &["보낸 날짜", "날짜"],
    to: &["받는 사람", "받는사람", "참조"],
    subject: &["제목"],
    separators: &["원본 메시지", "전달된 메시지", "전달된 메일"],
    forward_intros: &["전달된 메일"],
    signatures: &["iPhone에서 보냄", "Galaxy에서 보냄", "Android용 Outlook"],
    reply_prefixes: &["회신", "답장"],
    forward_prefixes: &["전달"],
};

const ZH: Language = Language {
    code: "zh",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*写道"],
    from: &["发件人"],
    date: &["发送时间", "日期"],
    to: &["收件人", "抄送"],
    subject: &["主题"],
    separators: &["原始邮件", "转发的邮件", "转发的消息"],
    forward_intros: &["以下是转发的邮件"],
    signatures: &["发自我的", "从我的"],
    reply_prefixes: &["回复", "答复"],
    forward_prefixes: &["转发"],
};

const VI: Language = Language {
    code: "vi",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\sđã\s+viết"],
    from: &["Từ"],
    date: &["Đã gửi", "Ngày"],
    to: &["Đến"],
    subject: &["Chủ đề"],
    separators: &["Thư gốc", "Thư đã chuyển tiếp", "Thư chuyển tiếp"],
    forward_intros: &["Bắt đầu tin nhắn được chuyển tiếp"],
    signatures: &["Được gửi từ", "Gửi từ"],
    reply_prefixes: &["TL", "Trả lời"],
    forward_prefixes: &["CT", "Chuyển tiếp"],
};

const TR: Language = Language {
    code: "tr",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\syazdı"],
    from: &["Kimden"],
    date: &["Gönderildi", "Tarih"],
    to: &["Kime", "Bilgi"],
    subject: &["Konu"],
    separators: &["Özgün İleti", "Orijinal Mesaj", "Yönlendirilmiş ileti", "İletilmiş Mesaj"],
    forward_intros: &["İletilen ileti başlangıcı"],
    signatures: &["iPhone'umdan gönderildi", "iPhone’umdan gönderildi", "Samsung Galaxy cihazımdan"],
    reply_prefixes: &["YNT"],
    forward_prefixes: &["İLT", "ILT"],
};

const CS: Language = Language {
    code: "cs",
    attributions: &[r".*\d{1,2}[:.]\d{2}.*\snapsal(?:\(a\)|a)?"],
    from: &["Od"],
    date: &["Odesláno", "Datum"],
    to: &["Komu", "Kopie"],
    subject: &["Předmět"],
    separators: &["Původní zpráva", "Přeposlaná zpráva"],
    forward_intros: &["Začátek přeposlané zprávy"],
    signatures: &["Odesláno z"],
    reply_prefixes: &["Odp"],
    forward_prefixes: &["PŘ", "Fw"],
};
