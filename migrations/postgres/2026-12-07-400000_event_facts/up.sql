-- The ticket history as facts (issue #18): an `event` message keeps its fact in `event`, the JSON
-- {"code": …, "args": {…}} of `domain::Event`, told in each reader's language when read. The prose
-- written so far (French or English, every wording the code has used) becomes that fact where it
-- matches one; the rest is kept as {"code": "text", "args": {"text": <the prose>}}, shown as is.
ALTER TABLE messages ADD COLUMN event TEXT NULL;

-- Wordings without arguments.
WITH w(words, code) AS (VALUES
    ('Désassigné', 'unassigned'),
    ('Unassigned', 'unassigned'),
    ('Expéditeur non vérifié : l''adresse From a échoué au contrôle DMARC', 'unverified'),
    ('Sender not verified: the From address failed the DMARC check', 'unverified'),
    ('Rouvert par la réponse du client', 'reopened_by_customer'),
    ('Reopened by the customer''s answer', 'reopened_by_customer'),
    ('Relance envoyée au client', 'reminder_sent'),
    ('Reminder sent to the customer', 'reminder_sent'),
    ('En retard : pas encore de réponse', 'overdue'),
    ('Overdue: no staff answer yet', 'overdue'))
UPDATE messages SET event = json_build_object('code', w.code, 'args', json_build_object())::text
FROM w WHERE messages.kind = 'event' AND messages.event IS NULL AND messages.text = w.words;

-- "Statut : Nouveau → En cours", "Priority: Normal → Blocking": labels back to codes.
WITH labels(what, label, code) AS (VALUES
    ('status', 'Nouveau', 'new'),
    ('status', 'En cours', 'open'),
    ('status', 'En attente client', 'waiting'),
    ('status', 'Clôturé', 'closed'),
    ('status', 'New', 'new'),
    ('status', 'In progress', 'open'),
    ('status', 'Waiting on customer', 'waiting'),
    ('status', 'Closed', 'closed'),
    ('priority', 'Faible', 'low'),
    ('priority', 'Normale', 'normal'),
    ('priority', 'Bloquante', 'blocking'),
    ('priority', 'Low', 'low'),
    ('priority', 'Normal', 'normal'),
    ('priority', 'Blocking', 'blocking')),
parsed AS (
    SELECT id,
        CASE WHEN substr(text, 1, 4) = 'Stat' THEN 'status' ELSE 'priority' END AS what,
        trim(substr(text, strpos(text, ':') + 1, strpos(text, ' → ') - strpos(text, ':') - 1)) AS a,
        substr(text, strpos(text, ' → ') + 3) AS b
    FROM messages
    WHERE kind = 'event' AND event IS NULL AND strpos(text, ' → ') > 0
        AND (substr(text, 1, 9) = 'Statut : ' OR substr(text, 1, 8) = 'Status: '
            OR substr(text, 1, 11) = 'Priorité : ' OR substr(text, 1, 10) = 'Priority: ')
)
UPDATE messages SET event = json_build_object('code', p.what || '_changed', 'args', json_build_object('from', f.code, 'to', t.code))::text
FROM parsed p
JOIN labels f ON f.what = p.what AND f.label = p.a
JOIN labels t ON t.what = p.what AND t.label = p.b
WHERE messages.id = p.id;

-- Two arguments around fixed words: "Ouvert par {by} pour le compte de {requester}"…
WITH w(prefix, sep, code, a1, a2) AS (VALUES
    ('Ouvert par ', ' pour le compte de ', 'opened_on_behalf', 'by', 'requester'),
    ('Opened by ', ' on behalf of ', 'opened_on_behalf', 'by', 'requester'),
    ('Échec de distribution (', ') : ', 'delivery_failed', 'notice', 'failures'),
    ('Delivery failed (', '): ', 'delivery_failed', 'notice', 'failures'),
    ('Notification à ', ' refusée : ', 'notification_refused', 'recipient', 'error'),
    ('Notification to ', ' refused: ', 'notification_refused', 'recipient', 'error'))
UPDATE messages SET event = json_build_object('code', w.code, 'args', json_build_object(w.a1, substr(messages.text, length(w.prefix) + 1, strpos(messages.text, w.sep) - length(w.prefix) - 1), w.a2, substr(messages.text, strpos(messages.text, w.sep) + length(w.sep))))::text
FROM w WHERE messages.kind = 'event' AND messages.event IS NULL
    AND substr(messages.text, 1, length(w.prefix)) = w.prefix AND strpos(messages.text, w.sep) > length(w.prefix);

-- "Suite du ticket n° 12", "Follows up ticket #12".
WITH w(prefix) AS (VALUES
    ('Suite du ticket n° '),
    ('Follows up ticket #'))
UPDATE messages SET event = json_build_object('code', 'follows_up', 'args', json_build_object('ticket', CAST(substr(messages.text, length(w.prefix) + 1) AS BIGINT)))::text
FROM w WHERE messages.kind = 'event' AND messages.event IS NULL
    AND substr(messages.text, 1, length(w.prefix)) = w.prefix AND substr(messages.text, length(w.prefix) + 1) ~ '^[0-9]+$';

-- One argument after fixed words: "En copie : {address}"…
WITH w(prefix, code, arg) AS (VALUES
    ('En copie : ', 'watcher_added', 'address'),
    ('In copy: ', 'watcher_added', 'address'),
    ('Assigné à ', 'assigned', 'to'),
    ('Assigned to ', 'assigned', 'to'),
    ('Rouvert : ', 'reopened', 'reason'),
    ('Reopened: ', 'reopened', 'reason'))
UPDATE messages SET event = json_build_object('code', w.code, 'args', json_build_object(w.arg, substr(messages.text, length(w.prefix) + 1)))::text
FROM w WHERE messages.kind = 'event' AND messages.event IS NULL
    AND substr(messages.text, 1, length(w.prefix)) = w.prefix AND length(messages.text) > length(w.prefix);

-- Anything else stays the prose it was.
UPDATE messages SET event = json_build_object('code', 'text', 'args', json_build_object('text', text))::text
WHERE kind = 'event' AND event IS NULL;
