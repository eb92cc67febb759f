-- SPEC §9: the OAuth 2.0 refresh token of each account, kept by `guichet oauth-login USERNAME`
-- and replaced whenever the identity provider rotates it. Access tokens stay in memory only.
CREATE TABLE oauth_tokens (
    username TEXT PRIMARY KEY NOT NULL,
    refresh_token TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
