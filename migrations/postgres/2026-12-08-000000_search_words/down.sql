-- Back to PostgreSQL's parser for every row (what the code before this migration writes).
UPDATE message_search s
SET tsv = to_tsvector('simple', unaccent_simple(m.subject || E'\n' || m.full_text))
FROM messages m
WHERE m.id = s.message_id;
DROP FUNCTION search_words(text);
