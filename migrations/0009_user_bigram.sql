-- `GET /users/search` of two characters through an index too (issue 9 item 4): a two-character needle has no
-- trigram, so 0008's index cannot answer it, and the scan it fell back to cost 40 times more on a database of
-- 100 000 accounts than on a small one. This table holds every two-character substring of each account's
-- search text (a needle of two characters is in the text exactly when it is one of them), with the account
-- id second in the key: a search reads one bigram's ids in order and stops at the 20th live match.
--
-- Triggers cannot use common table expressions, so the positions 0 … length − 2 come from `json_each` over a
-- JSON array of that many zeros, built with printf's repeat (`%.*c`).
CREATE TABLE user_bigram (
    bigram   TEXT    NOT NULL,
    user_id  INTEGER NOT NULL,
    PRIMARY KEY (bigram, user_id)
) WITHOUT ROWID;

CREATE TRIGGER user_bigram_insert AFTER INSERT ON user WHEN length(new.search_text) >= 2 BEGIN
    INSERT OR IGNORE INTO user_bigram (bigram, user_id)
    SELECT substr(new.search_text, j.key + 1, 2), new.id
    FROM json_each('[' || substr(replace(printf('%.*c', length(new.search_text) - 1, 'x'), 'x', ',0'), 2) || ']') j
    WHERE j.key + 1 < length(new.search_text);
END;

CREATE TRIGGER user_bigram_delete AFTER DELETE ON user WHEN length(old.search_text) >= 2 BEGIN
    DELETE FROM user_bigram WHERE user_id = old.id AND bigram IN (
        SELECT substr(old.search_text, j.key + 1, 2)
        FROM json_each('[' || substr(replace(printf('%.*c', length(old.search_text) - 1, 'x'), 'x', ',0'), 2) || ']') j
        WHERE j.key + 1 < length(old.search_text));
END;

CREATE TRIGGER user_bigram_update AFTER UPDATE OF search_text ON user BEGIN
    DELETE FROM user_bigram WHERE user_id = old.id AND bigram IN (
        SELECT substr(old.search_text, j.key + 1, 2)
        FROM json_each('[' || substr(replace(printf('%.*c', length(old.search_text) - 1, 'x'), 'x', ',0'), 2) || ']') j
        WHERE j.key + 1 < length(old.search_text));
    INSERT OR IGNORE INTO user_bigram (bigram, user_id)
    SELECT substr(new.search_text, j.key + 1, 2), new.id
    FROM json_each('[' || substr(replace(printf('%.*c', length(new.search_text) - 1, 'x'), 'x', ',0'), 2) || ']') j
    WHERE j.key + 1 < length(new.search_text);
END;

-- The accounts that exist already.
INSERT OR IGNORE INTO user_bigram (bigram, user_id)
SELECT substr(u.search_text, j.key + 1, 2), u.id
FROM user u, json_each('[' || substr(replace(printf('%.*c', length(u.search_text) - 1, 'x'), 'x', ',0'), 2) || ']') j
WHERE length(u.search_text) >= 2 AND j.key + 1 < length(u.search_text);
