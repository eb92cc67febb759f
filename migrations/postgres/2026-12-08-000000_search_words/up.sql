-- The keyword index's words are made by guichet from now on (`store::search_index::lexemes`:
-- lower-case, accents dropped, split at every character that is not a letter, digit or mark)
-- and stored with array_to_tsvector, without PostgreSQL's parser (to_tsvector: 0.74 ms of CPU
-- per message, most of an ingest batch's write). Searches fold their words the same way, so the
-- rows indexed before are made again here, as near to guichet's folding as SQL goes (unaccent,
-- then [[:alnum:]] runs): 'jean-pierre@exemple.fr' is now the words jean, pierre, exemple, fr,
-- which a search for it asks. Same bounds: words of at most 255 bytes, at most 1,000,000 bytes
-- of words counted with 8 bytes each, in order of first appearance. `search_words` stays for
-- scripts that fill the index in SQL (scripts/bench-web-to-postgres).
CREATE FUNCTION search_words(text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
    SELECT array_to_tsvector(ARRAY(
        SELECT w FROM (
            SELECT w, sum(octet_length(w) + 8) OVER (ORDER BY n) AS upto
            FROM (
                SELECT w, min(n) AS n
                FROM regexp_split_to_table(public.unaccent_simple($1), '[^[:alnum:]]+') WITH ORDINALITY AS x(w, n)
                WHERE w <> '' AND octet_length(w) <= 255
                GROUP BY w
            ) words
        ) counted
        WHERE upto <= 1000000
    ))
    $$;
UPDATE message_search s
SET tsv = search_words(m.subject || E'\n' || m.full_text)
FROM messages m
WHERE m.id = s.message_id;
